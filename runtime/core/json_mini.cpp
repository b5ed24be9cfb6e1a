#include "json_mini.h"

#include <cstdio>

namespace stow {

const Json* Json::find(const std::string& key) const {
  for (const auto& m : members)
    if (m.first == key) return &m.second;
  return nullptr;
}

bool Json::as_index(int64_t& out) const {
  if (kind != NUMBER || text.empty() || text.size() > 18) return false;  // 18 digits always fit int64
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

const char* json_kind_name(Json::Kind k) {
  switch (k) {
    case Json::NUL: return "null";
    case Json::BOOL: return "a boolean";
    case Json::NUMBER: return "a number";
    case Json::STRING: return "a string";
    case Json::ARRAY: return "an array";
    case Json::OBJECT: return "an object";
  }
  return "?";
}

namespace {

// Recursive descent over the whole text; depth is bounded so a hostile header cannot blow the stack.
struct Parser {
  std::string_view s;
  size_t i = 0;
  std::string error;
  size_t error_at = 0;

  bool fail(const std::string& why) {
    if (error.empty()) {
      error = why;
      error_at = i;
    }
    return false;
  }

  void skip_space() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
  }

  bool literal(const char* word) {
    size_t n = std::char_traits<char>::length(word);
    if (s.compare(i, n, word) != 0) return fail(std::string("expected ") + word);
    i += n;
    return true;
  }

  bool value(Json& out, int depth) {
    if (depth > 64) return fail("nesting deeper than 64 levels");
    skip_space();
    if (i >= s.size()) return fail("unexpected end of JSON");
    char c = s[i];
    if (c == '{') return object(out, depth);
    if (c == '[') return array(out, depth);
    if (c == '"') {
      out.kind = Json::STRING;
      return string(out.text);
    }
    if (c == 't' || c == 'f') {
      out.kind = Json::BOOL;
      out.boolean = c == 't';
      return literal(c == 't' ? "true" : "false");
    }
    if (c == 'n') {
      out.kind = Json::NUL;
      return literal("null");
    }
    if (c == '-' || (c >= '0' && c <= '9')) return number(out);
    return fail(std::string("unexpected character '") + c + "'");
  }

  bool digits() {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') i++;
    return i > start || fail("expected a digit");
  }

  bool number(Json& out) {
    size_t start = i;
    if (s[i] == '-') i++;
    if (!digits()) return false;
    if (i < s.size() && s[i] == '.') {
      i++;
      if (!digits()) return false;
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      i++;
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) i++;
      if (!digits()) return false;
    }
    out.kind = Json::NUMBER;
    out.text = std::string(s.substr(start, i - start));
    return true;
  }

  bool hex4(uint32_t& out) {
    if (i + 4 > s.size()) return fail("truncated \\u escape");
    out = 0;
    for (int k = 0; k < 4; k++) {
      char c = s[i++];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) return fail("bad hex digit in \\u escape");
      out = out * 16 + uint32_t(d);
    }
    return true;
  }

  static void put_utf8(std::string& o, uint32_t cp) {
    if (cp < 0x80) {
      o += char(cp);
    } else if (cp < 0x800) {
      o += char(0xC0 | (cp >> 6));
      o += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      o += char(0xE0 | (cp >> 12));
      o += char(0x80 | ((cp >> 6) & 0x3F));
      o += char(0x80 | (cp & 0x3F));
    } else {
      o += char(0xF0 | (cp >> 18));
      o += char(0x80 | ((cp >> 12) & 0x3F));
      o += char(0x80 | ((cp >> 6) & 0x3F));
      o += char(0x80 | (cp & 0x3F));
    }
  }

  bool string(std::string& out) {
    i++;  // opening quote
    out.clear();
    while (true) {
      if (i >= s.size()) return fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == '"') {
        i++;
        return true;
      }
      if (c < 0x20) return fail("control character inside a string");
      if (c != '\\') {
        out += char(c);
        i++;
        continue;
      }
      i++;
      if (i >= s.size()) return fail("unterminated escape");
      char e = s[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00) {  // high surrogate: a low one must follow
            uint32_t lo;
            if (s.compare(i, 2, "\\u") != 0) return fail("lone surrogate in \\u escape");
            i += 2;
            if (!hex4(lo)) return false;
            if (lo < 0xDC00 || lo >= 0xE000) return fail("bad low surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default:
          i--;
          return fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }

  bool array(Json& out, int depth) {
    out.kind = Json::ARRAY;
    i++;
    skip_space();
    if (i < s.size() && s[i] == ']') {
      i++;
      return true;
    }
    while (true) {
      out.items.emplace_back();
      if (!value(out.items.back(), depth + 1)) return false;
      skip_space();
      if (i < s.size() && s[i] == ',') {
        i++;
        continue;
      }
      if (i < s.size() && s[i] == ']') {
        i++;
        return true;
      }
      return fail("expected ',' or ']' in an array");
    }
  }

  bool object(Json& out, int depth) {
    out.kind = Json::OBJECT;
    i++;
    skip_space();
    if (i < s.size() && s[i] == '}') {
      i++;
      return true;
    }
    while (true) {
      skip_space();
      if (i >= s.size() || s[i] != '"') return fail("expected a string key in an object");
      std::string key;
      size_t key_at = i;
      if (!string(key)) return false;
      for (const auto& m : out.members)
        if (m.first == key) {
          i = key_at;
          return fail("duplicate key \"" + key + "\"");
        }
      skip_space();
      if (i >= s.size() || s[i] != ':') return fail("expected ':' after an object key");
      i++;
      out.members.emplace_back(std::move(key), Json());
      if (!value(out.members.back().second, depth + 1)) return false;
      skip_space();
      if (i < s.size() && s[i] == ',') {
        i++;
        continue;
      }
      if (i < s.size() && s[i] == '}') {
        i++;
        return true;
      }
      return fail("expected ',' or '}' in an object");
    }
  }
};

}  // namespace

bool parse_json(std::string_view text, Json& out, std::string& error, int64_t& offset) {
  Parser p{text, 0, {}, 0};
  out = Json();
  bool ok = p.value(out, 0);
  if (ok) {
    p.skip_space();
    if (p.i != text.size()) ok = p.fail("trailing characters after the JSON value");
  }
  if (!ok) {
    error = p.error;
    offset = int64_t(p.error_at);
  }
  return ok;
}

std::string json_quote(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += char(c);
        }
    }
  }
  return o + "\"";
}

bool json_equal(const Json& a, const Json& b) {
  if (a.kind != b.kind || a.boolean != b.boolean || a.text != b.text || a.items.size() != b.items.size() ||
      a.members.size() != b.members.size())
    return false;
  for (size_t i = 0; i < a.items.size(); i++)
    if (!json_equal(a.items[i], b.items[i])) return false;
  for (size_t i = 0; i < a.members.size(); i++)
    if (a.members[i].first != b.members[i].first || !json_equal(a.members[i].second, b.members[i].second)) return false;
  return true;
}

std::string json_text(const Json& j) {
  switch (j.kind) {
    case Json::NUL: return "null";
    case Json::BOOL: return j.boolean ? "true" : "false";
    case Json::NUMBER: return j.text;
    case Json::STRING: return json_quote(j.text);
    case Json::ARRAY: {
      std::string s = "[";
      for (size_t i = 0; i < j.items.size(); i++) s += (i ? "," : "") + json_text(j.items[i]);
      return s + "]";
    }
    case Json::OBJECT: {
      std::string s = "{";
      for (size_t i = 0; i < j.members.size(); i++)
        s += (i ? "," : "") + json_quote(j.members[i].first) + ":" + json_text(j.members[i].second);
      return s + "}";
    }
  }
  return "";
}

}  // namespace stow
