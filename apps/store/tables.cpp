#include "apps/store/tables.hpp"

#include <cctype>
#include <map>
#include <sstream>

namespace iotnas::apps {

namespace {

// Every table of kSchema by name. Relies on kSchema's layout: "CREATE TABLE name (" on a line of
// its own, then one column ("name TYPE ...") or table constraint (upper case) per line.
std::map<std::string, std::vector<ColumnSql>, std::less<>> parse_schema() {
  std::map<std::string, std::vector<ColumnSql>, std::less<>> tables;
  std::vector<ColumnSql>* columns = nullptr;
  std::istringstream lines(kSchema);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string first, second;
    words >> first >> second;
    if (first == "CREATE") {
      words >> second;  // the table's name
      columns = &tables[second];
    } else if (!first.empty() && std::islower(static_cast<unsigned char>(first[0]))) {
      IOTNAS_ASSERT(columns, "kSchema: column outside a table: " + line);
      columns->push_back({first, second.substr(0, second.find(',')),
                          line.find(" INTEGER PRIMARY KEY") != std::string::npos});
    }
  }
  return tables;
}

}  // namespace

const std::vector<ColumnSql>& schema_columns(std::string_view name) {
  static const auto tables = parse_schema();
  const auto it = tables.find(name);
  IOTNAS_ASSERT(it != tables.end(), "no table " + std::string(name) + " in kSchema");
  return it->second;
}

std::string join(const std::vector<std::string_view>& parts) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) s += ", ";
    s += parts[i];
  }
  return s;
}

}  // namespace iotnas::apps
