// Reading JSON and text files that come from outside (model specs, laws files, profiles, run
// configs) strictly and with one-line errors:
//   - a repeated key in one object is refused (JSON readers disagree on which copy wins);
//   - a number beyond double range (1e400) or any other syntax error names the file;
//   - a directory or an unreadable path given as the file is refused by name.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace iotnas {

// Parses `text`; errors read "<origin>: <problem>; <hint>" (iotnas::Error). `hint` says what the
// file should be, e.g. "a model spec is a JSON object, see docs/model-spec.md".
nlohmann::json parse_json_strict(std::string_view text, const std::string& origin,
                                 std::string_view hint);

// The whole content of the regular file at `path`; `what` names it in errors ("model spec").
std::string read_text_file(const std::string& path, std::string_view what);

// `s` with control characters and backslashes escaped (\n, \x1b, ...), for messages that
// quote names from outside: an error stays one line and carries no terminal escapes.
std::string printable(std::string_view s);

}  // namespace iotnas
