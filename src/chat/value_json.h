/* Values to and from JSON, as Python's json module does it: tojson in chat templates is Hugging Face's
 * json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) with those keywords open
 * to the template; JSON from the caller (messages, tools, extra variables) becomes values as json.loads makes
 * them (an integer literal is an int, any other number a float). */
#ifndef SQ_CHAT_VALUE_JSON_H
#define SQ_CHAT_VALUE_JSON_H

#include "chat/value.h"

typedef struct ct_json_style {
    int ensure_ascii; /* escape every non-ASCII character as \uXXXX */
    int indent_on;    /* indent given: one member per line */
    ct_str indent;    /* the text one level of indentation adds */
    ct_str item_sep, key_sep;
    int sort_keys;
} ct_json_style;

/* json.dumps defaults for the given indentation: separators ", " ": " without it, "," ": " with it. */
ct_json_style ct_json_default_style(int indent_on, ct_str indent);
void ct_append_json(ct_arena *a, ct_buf *b, const ct_value *v, const ct_json_style *style);

/* Parses JSON text into a value. `what` names it in errors ("messages[2]"). Invalid JSON, invalid UTF-8, a
 * "\u0000" escape (Python keeps it, cJSON cannot) and integers past 64 bits are errors. */
ct_value ct_from_json(ct_arena *a, const char *text, size_t len, const char *what);

#endif
