#include "engine/util/json.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "kernels/base/error.hpp"

namespace iotnas {

using nlohmann::json;

namespace {

// nlohmann's messages start with "[json.exception.parse_error.101] "; the tag helps nobody.
std::string without_tag(const char* what) {
  std::string s = what;
  if (s.rfind("[json.exception.", 0) == 0) {
    if (auto close = s.find("] "); close != std::string::npos) s.erase(0, close + 2);
  }
  return s;
}

}  // namespace

json parse_json_strict(std::string_view text, const std::string& origin, std::string_view hint) {
  std::vector<std::set<std::string>> open;  // the keys seen in each enclosing object
  auto check_keys = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) open.emplace_back();
    if (event == json::parse_event_t::object_end && !open.empty()) open.pop_back();
    if (event == json::parse_event_t::key && !open.empty() &&
        !open.back().insert(parsed.get<std::string>()).second) {
      fail(origin, ": key \"", printable(parsed.get<std::string>()),
           "\" appears twice in one object; keep one (readers disagree on which copy wins)");
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), check_keys);
  } catch (const json::out_of_range& e) {
    fail(origin, ": ", without_tag(e.what()), " (numbers must fit a double, |x| < 1.8e308); ",
         hint);
  } catch (const json::exception& e) {
    fail(origin, ": not valid JSON (", without_tag(e.what()), "); ", hint);
  }
}

std::string read_text_file(const std::string& path, std::string_view what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    fail("cannot read ", what, " '", printable(path), "': ", std::strerror(errno),
         "; check the path");
  }
  if (S_ISDIR(st.st_mode)) {
    fail(what, " '", printable(path), "' is a directory; give the path of the ", what,
         " file itself");
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot read ", what, " '", printable(path), "': ", std::strerror(errno));
  std::ostringstream s;
  s << f.rdbuf();
  if (f.bad()) fail("cannot read ", what, " '", printable(path), "': read error");
  return s.str();
}

std::string printable(std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (unsigned char ch : s) {
    switch (ch) {
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (ch < 0x20 || ch == 0x7f) {
          out += "\\x";
          out += kHex[ch >> 4];
          out += kHex[ch & 15];
        } else {
          out += char(ch);
        }
    }
  }
  return out;
}

}  // namespace iotnas
