// The program of the link checks in lib/CMakeLists.txt: it links whole libraries (every object),
// so an undefined reference to a higher layer's symbol fails the build. It is never run.
int main() { return 0; }
