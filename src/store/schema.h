// The store's schema as a list of migrations: migration i turns schema version i into i + 1
// (version 0 = empty file). A store records its version in schema_version; opening one runs the
// migrations it lacks, in one transaction. Never edit a released migration: append a new one,
// bump Store::kSchemaVersion and document the change in docs/STORE.md.
#pragma once

#include <string>
#include <vector>

namespace pelab::store_schema {

const std::vector<std::string>& migrations();

}  // namespace pelab::store_schema
