// A minimal JSON reader and string escaper: enough for safetensors headers (objects, arrays, strings,
// integers) and the metrics lines we write. Not a general-purpose library: numbers keep their text so
// that 64-bit integers (data offsets) are read exactly.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stow {

struct Json {
  enum Kind { NUL, BOOL, NUMBER, STRING, ARRAY, OBJECT };
  Kind kind = NUL;
  bool boolean = false;
  std::string text;                                   // STRING: decoded value; NUMBER: its literal
  std::vector<Json> items;                            // ARRAY
  std::vector<std::pair<std::string, Json>> members;  // OBJECT, in file order

  const Json* find(const std::string& key) const;     // OBJECT member or nullptr
  // A NUMBER that is a non-negative integer fitting int64 (no sign, fraction or exponent).
  bool as_index(int64_t& out) const;
};

// Parses `text` as exactly one JSON value. On error returns false and sets `error` to a description
// and `offset` to the byte offset (within text) where it was found.
bool parse_json(std::string_view text, Json& out, std::string& error, int64_t& offset);

// `s` as a JSON string literal, quotes included.
std::string json_quote(const std::string& s);

// Same kind and contents, members in the same order (numbers compared as written).
bool json_equal(const Json& a, const Json& b);

// `j` written back as compact JSON (for messages).
std::string json_text(const Json& j);

// Kind name for messages ("a string", "an array", ...).
const char* json_kind_name(Json::Kind k);

}  // namespace stow
