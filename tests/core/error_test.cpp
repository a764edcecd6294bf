// core/error.h: an error's kind travels with it and alone decides the exit code; adding context
// in a catch block keeps the kind (or sets the one the context knows).
#include "xmodal/core/error.h"

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace xmodal {
namespace {

TEST(Error, EachTypeCarriesItsKindAndItsExitCode) {
  EXPECT_EQ(kind_of(UsageError("x")), ErrorKind::usage);
  EXPECT_EQ(kind_of(ConfigError({"a.yaml:3: model.x: unknown key"})), ErrorKind::usage);
  EXPECT_EQ(kind_of(InputError("x")), ErrorKind::input);
  EXPECT_EQ(kind_of(NotImplementedError("x")), ErrorKind::usage);
  // exceptions from elsewhere: the standard library's convention
  EXPECT_EQ(kind_of(std::invalid_argument("x")), ErrorKind::usage);
  EXPECT_EQ(kind_of(std::runtime_error("x")), ErrorKind::runtime);
  EXPECT_EQ(kind_of(std::bad_alloc()), ErrorKind::runtime);
  EXPECT_EQ(exit_code(ErrorKind::usage), 2);
  EXPECT_EQ(exit_code(ErrorKind::input), 1);
  EXPECT_EQ(exit_code(ErrorKind::runtime), 1);
  EXPECT_STREQ(to_string(ErrorKind::input), "input");
  // the standard base classes stay what callers catch
  EXPECT_THROW(throw ConfigError({"p"}), std::invalid_argument);
  EXPECT_THROW(throw InputError("p"), std::runtime_error);
}

// The error rethrown by rethrow_in from inside a catch block of `thrown`.
template <typename Throw, typename... Context>
std::pair<ErrorKind, std::string> rethrown(Throw thrown, Context... context) {
  try {
    try {
      thrown();
    } catch (...) {
      rethrow_in(context...);
    }
  } catch (const std::exception& e) {
    return {kind_of(e), e.what()};
  }
  ADD_FAILURE() << "nothing was thrown";
  return {};
}

TEST(Error, RethrowInAddsContextAndKeepsOrSetsTheKind) {
  const auto input = rethrown([] { throw InputError("no such file"); }, std::string("key: "));
  EXPECT_EQ(input.first, ErrorKind::input);
  EXPECT_EQ(input.second, "key: no such file");
  const auto usage = rethrown([] { throw std::invalid_argument("bad"); }, std::string("a: "));
  EXPECT_EQ(usage.first, ErrorKind::usage);
  const auto set = rethrown([] { throw std::invalid_argument("duplicate token 'a'"); },
                            std::string("vocab.txt: "), ErrorKind::input);
  EXPECT_EQ(set.first, ErrorKind::input);
  EXPECT_EQ(set.second, "vocab.txt: duplicate token 'a'");
  // a LibTorch error's message without its C++ stack trace
  const auto torch = rethrown([] { TORCH_CHECK(false, "shape mismatch"); }, std::string("w: "));
  EXPECT_EQ(torch.first, ErrorKind::runtime);
  EXPECT_EQ(torch.second.rfind("w: shape mismatch", 0), 0u) << torch.second;
  EXPECT_EQ(torch.second.find("Exception raised from"), std::string::npos) << torch.second;
}

TEST(Error, AnOptionErrorNamesOptionsInTheLibrarysTermsAndAFrontEndsOwn) {
  const std::string path = "/data/{odd}}folder";
  const OptionError e("index", "give exactly one of {images} and {split}; " +
                                   OptionError::literal(path) + " {out}");
  EXPECT_EQ(kind_of(e), ErrorKind::usage);
  EXPECT_STREQ(e.what(), "index: give exactly one of images and split; /data/{odd}}folder out");
  EXPECT_EQ(e.options(), (std::vector<std::string>{"images", "split", "out"}));
  const auto flag = [](const std::string& name) { return "--" + name; };
  EXPECT_EQ(e.render(flag),
            "index: give exactly one of --images and --split; /data/{odd}}folder --out");
  // no context: the message alone; an unmatched brace stays text
  EXPECT_STREQ(OptionError("", "{pool} must be none { or cls").what(),
               "pool must be none { or cls");
  EXPECT_THROW(throw OptionError("a", "b"), std::invalid_argument);  // what callers catch
  // a context added on the way up keeps it an OptionError with its options named
  try {
    try {
      throw OptionError("", "no {backend} index");
    } catch (const std::exception&) {
      rethrow_in("search: ");
    }
  } catch (const OptionError& again) {
    EXPECT_EQ(again.render([](const std::string& n) { return "--" + n; }),
              "search: no --backend index");
  }
}

}  // namespace
}  // namespace xmodal
