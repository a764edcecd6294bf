// The tokenization the COCO caption evaluation (pycocoevalcap) applies to references and
// results before scoring: Stanford CoreNLP 3.4.1's PTBTokenizer with -preserveLines -lowerCase,
// then the removal of its punctuation tokens ('' ' `` ` -LRB- -RRB- -LCB- -RCB- . ? ! , : - --
// ... ;). The official code runs the Java tokenizer; this is a C++ implementation of the
// lexer's rules that captions meet:
//   - words keep internal hyphens, slashes, periods between letters or digits ("t-shirt",
//     "sofa.a", "3.5"), commas and colons between digits ("1,000", "10:30"), apostrophes
//     between letters ("o'clock");
//   - clitics split off: 's 'm 'd 're 've 'll n't ("it 's", "is n't", "ca n't"), and
//     cannot, gonna, gotta, wanna, lemme, gimme ("can not", "gon na");
//   - a word's final period splits off unless the word is an abbreviation (a single letter,
//     an acronym such as u.s. or p.m., or one of the lexer's lists: mr. st. mt. etc. jan. ...;
//     no. fig. and the like only before a number);
//   - brackets become -lrb- -rrb- -lsb- -rsb- -lcb- -rcb- (lower-cased, so the official
//     punctuation filter, which lists them upper-case, keeps the round and curly ones); runs of
//     ! and ? are one token; $ # % & * + = ~ ^ | \ are tokens of their own; three or more
//     periods are "..."; two or more hyphens "--";
//   - typographic quotes, dashes, the ellipsis and vulgar fractions become their ASCII forms.
// tests/tasks/caption_metrics_test.cpp compares it with the Java tokenizer's output on every
// COCO and scenes caption in the fixtures (scripts/make_caption_metric_fixtures.py).
#pragma once

#include <string>
#include <vector>

namespace xmodal::tasks {

/// The PTBTokenizer's tokens of one line, lower-cased, punctuation included.
std::vector<std::string> ptb_tokens(const std::string& line);

/// What pycocoevalcap scores: the tokens without its punctuation list, joined by single
/// spaces ("" for a caption of punctuation only).
std::string coco_caption_tokenize(const std::string& caption);

}  // namespace xmodal::tasks
