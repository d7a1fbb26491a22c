/* squeeze chat-template: renders a conversation with a model's chat template (or a template file), to see
 * exactly the text the model is given. --cases renders many conversations in one run (the reference tests'
 * batch mode). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage_text[] =
    "usage: squeeze chat-template (-m MODEL | --tokenizer FILE | --template FILE) [options]\n"
    "  -m MODEL                the model's chat template (the plain fallback when it has none)\n"
    "  --tokenizer FILE        the template of a tokenizer (tokenizer.json reads tokenizer_config.json "
    "beside it)\n"
    "  --template FILE         a Jinja template file\n"
    "  --messages FILE         a JSON array of messages, e.g. [{\"role\": \"user\", \"content\": \"Hi\"}]\n"
    "  --add-generation-prompt end with the header of the assistant's reply\n"
    "  --vars JSON             a JSON object of more template variables, e.g. '{\"enable_thinking\": "
    "false}'\n"
    "  --bos TEXT, --eos TEXT  bos_token and eos_token (default: the tokenizer's)\n"
    "  --cases FILE            a JSON array of {\"messages_json\": \"[...]\", \"add_generation_prompt\": "
    "bool,\n"
    "                          \"vars_json\": \"{...}\"} (messages and variables as JSON text); prints a "
    "JSON\n"
    "                          array of {\"text\": ...} or {\"error\": ...}, one per case\n"
    "  --print-template        print the template's source instead (and say when it is the fallback)\n";

typedef struct options {
    const char *model, *tokenizer, *template_file, *messages, *vars, *bos, *eos, *cases;
    int add_generation_prompt, print_template;
} options;

static int parse_options(int argc, char **argv, options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return -1;
        }
        const char **value = !strcmp(a, "-m")            ? &o->model
                             : !strcmp(a, "--tokenizer") ? &o->tokenizer
                             : !strcmp(a, "--template")  ? &o->template_file
                             : !strcmp(a, "--messages")  ? &o->messages
                             : !strcmp(a, "--vars")      ? &o->vars
                             : !strcmp(a, "--bos")       ? &o->bos
                             : !strcmp(a, "--eos")       ? &o->eos
                             : !strcmp(a, "--cases")     ? &o->cases
                                                         : NULL;
        if (value) {
            if (!(*value = cli_flag_value("chat-template", argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--add-generation-prompt")) {
            o->add_generation_prompt = 1;
        } else if (!strcmp(a, "--print-template")) {
            o->print_template = 1;
        } else {
            return cli_usage_error("chat-template", "unknown option '%s'", a);
        }
    }
    if (!!o->model + !!o->tokenizer + !!o->template_file != 1)
        return cli_usage_error("chat-template", "give exactly one of -m, --tokenizer and --template");
    if (o->cases && (o->messages || o->vars || o->add_generation_prompt))
        return cli_usage_error("chat-template",
                               "--cases carries its own messages, variables and generation prompt");
    return 0;
}

/* Renders one conversation; on success prints it (or, with results, adds {"text"} / {"error"} there). */
static int render_one(const sq_chat_template *t, const char *messages_json, int add_gen, const char *vars,
                      const options *o, cJSON *results) {
    sq_chat_render_options ro = {
        .add_generation_prompt = add_gen, .bos_token = o->bos, .eos_token = o->eos, .vars_json = vars};
    char *text = NULL;
    size_t len = 0;
    sq_error *err = sq_chat_template_render_json(t, messages_json, &ro, &text, &len);
    if (!results) {
        if (err) return cli_fail(err);
        fwrite(text, 1, len, stdout);
        free(text);
        return 0;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToArray(results, r);
    if (err) {
        cJSON_AddStringToObject(r, "error", sq_error_message(err));
        sq_error_free(err);
    } else {
        cJSON_AddStringToObject(r, "text", text);
        free(text);
    }
    return 0;
}

/* The cases carry their messages and variables as JSON text, handed to the library as it is (re-printing
 * would turn 1.0 into 1). */
static int run_cases(const sq_chat_template *t, const options *o) {
    char *text;
    size_t len;
    sq_error *err = sq_eval_read_text(o->cases, &text, &len);
    if (err) return cli_fail(err);
    cJSON *cases = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsArray(cases)) {
        fprintf(stderr, "squeeze chat-template: %s: not a JSON array\n", o->cases);
        cJSON_Delete(cases);
        return 1;
    }
    cJSON *results = cJSON_CreateArray();
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *messages = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "messages_json"));
        const char *vars = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "vars_json"));
        render_one(t, messages ? messages : "[]",
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt")), vars, o,
                   results);
    }
    char *out = cJSON_PrintUnformatted(results);
    if (out) puts(out);
    cJSON_free(out);
    cJSON_Delete(results);
    cJSON_Delete(cases);
    return out ? 0 : 1;
}

static int run(const sq_chat_template *t, const options *o) {
    if (o->print_template) {
        if (sq_chat_template_is_fallback(t))
            fprintf(stderr, "squeeze chat-template: no chat template of its own; the plain fallback:\n");
        fputs(sq_chat_template_source(t), stdout);
        putchar('\n');
        return 0;
    }
    if (o->cases) return run_cases(t, o);
    char *messages = NULL;
    size_t len;
    if (o->messages) {
        sq_error *err = sq_eval_read_text(o->messages, &messages, &len);
        if (err) return cli_fail(err);
    }
    int rc = render_one(t, messages ? messages : "[]", o->add_generation_prompt, o->vars, o, NULL);
    free(messages);
    return rc;
}

int sq_cmd_chat_template(int argc, char **argv) {
    options o = {0};
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    sq_chat_template *t = NULL;
    sq_error *err = NULL;
    sq_model *model = NULL;
    sq_tokenizer *tok = NULL;
    if (o.template_file) {
        char *src;
        size_t len;
        if (!(err = sq_eval_read_text(o.template_file, &src, &len))) {
            err = sq_chat_template_compile(src, len, &t);
            free(src);
        }
    } else if (o.tokenizer) {
        if (!(err = cli_load_tokenizer(o.tokenizer, &tok))) err = sq_chat_template_from_tokenizer(tok, &t);
    } else if (!(err = cli_load_model(o.model, NULL, &model))) {
        const sq_tokenizer *mt = sq_model_tokenizer(model);
        if (!mt) {
            fprintf(stderr, "squeeze chat-template: %s: the model has no tokenizer\n", o.model);
            sq_model_free(model);
            return 1;
        }
        err = sq_chat_template_from_tokenizer(mt, &t);
    }
    rc = err ? cli_fail(err) : run(t, &o);
    sq_chat_template_free(t);
    sq_tokenizer_free(tok);
    sq_model_free(model);
    return rc;
}
