// Command-line options from a field table (engine/util/fields.hpp): each field with a flag
// becomes an option bound to the field's member of `target`, with the table's help text and the
// member's current value as the shown default. Values are checked where the command checks them.
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <span>
#include <string>
#include <variant>

#include "engine/util/fields.hpp"

namespace iotnas::apps {

// Adds the options of `table`'s fields that have a flag; returns them by flag. `target` must
// outlive the parse (e.g. held by a shared_ptr the callback keeps).
template <class S>
std::map<std::string, CLI::Option*> add_field_options(CLI::App& cmd,
                                                      std::span<const fields::Field<S>> table,
                                                      S& target) {
  std::map<std::string, CLI::Option*> out;
  for (const fields::Field<S>& f : table) {
    if (!*f.flag) continue;
    out[f.flag] = std::visit(
        [&](auto* member) {
          if constexpr (std::is_same_v<decltype(member), bool*>) {
            return cmd.add_flag(f.flag, *member, f.help)->capture_default_str();
          } else {
            return cmd.add_option(f.flag, *member, f.help)->capture_default_str();
          }
        },
        f.ref(target));
  }
  return out;
}

}  // namespace iotnas::apps
