#include "apps/store/tables.hpp"

#include "apps/store/check.hpp"

#include <cctype>
#include <map>
#include <sstream>

namespace iotnas::apps {

namespace {

// Marks the columns named in "PRIMARY KEY (a, b)" as keys.
void mark_keys(const std::string& line, std::vector<ColumnSql>& columns) {
  std::string names = line.substr(line.find('(') + 1);
  names = names.substr(0, names.find(')'));
  std::istringstream parts(names);
  for (std::string name; std::getline(parts >> std::ws, name, ',');)
    for (ColumnSql& c : columns) c.key |= c.name == name;
}

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
                          line.find(" INTEGER PRIMARY KEY") != std::string::npos,
                          line.find(" PRIMARY KEY") != std::string::npos});
    } else if (first == "PRIMARY" && columns) {
      mark_keys(line, *columns);
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

void fail_stored_type(Stmt& q, const char* table, const std::vector<ColumnSql>& columns,
                      const std::vector<bool>& read, size_t c) {
  // The statement's index of each column read.
  std::vector<int> at(columns.size(), -1);
  for (size_t k = 0, i = 0; k < columns.size(); ++k)
    if (read[k]) at[k] = int(i++);
  const std::string stored = q.storage_class(at[c]) + " " + q.quoted(at[c]);  // before any
  std::string key;                                                            // conversion
  for (size_t k = 0; k < columns.size(); ++k)
    if (columns[k].key && at[k] >= 0)
      key += (key.empty() ? "" : ", ") + columns[k].name + " = " + q.quoted(at[k]);
  fail_damaged(q.path(), "table " + std::string(table) + ", column " + columns[c].name +
                             " of the row with " + key + " holds " + stored +
                             " where the schema wants " + columns[c].type);
}

}  // namespace iotnas::apps
