/* squeeze chat-template: renders a conversation with a model's chat template (or a template file), to see
 * exactly the text the model is given. --cases renders many conversations in one run (the reference tests'
 * batch mode). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct options {
    const char *model, *tokenizer, *template_file, *messages, *vars, *bos, *eos, *cases;
    int add_generation_prompt, print_template;
} options;

static const cli_verb verb = {
    .name = "chat-template",
    .usage = "(-m MODEL | --tokenizer FILE | --template FILE) [options]",
    .about = "Renders a conversation with a model's chat template (or a template file), to see exactly the\n"
             "text the model is given.\n",
};

static int parse_options(int argc, char **argv, options *o) {
    const cli_flag flags[] = {
        CLI_TEXT_FLAG("-m, --model", "MODEL", &o->model,
                      "the model's chat template (the plain fallback when it has none)"),
        CLI_TEXT_FLAG("--tokenizer", "FILE", &o->tokenizer,
                      "the template of a tokenizer (tokenizer.json reads\ntokenizer_config.json beside it)"),
        CLI_TEXT_FLAG("--template", "FILE", &o->template_file, "a Jinja template file"),
        CLI_TEXT_FLAG("--messages", "FILE", &o->messages,
                      "a JSON array of messages, e.g.\n[{\"role\": \"user\", \"content\": \"Hi\"}]",
                      .def_shown = "an empty conversation"),
        CLI_SWITCH_FLAG("--add-generation-prompt", &o->add_generation_prompt,
                        "end with the header of the assistant's reply"),
        CLI_TEXT_FLAG("--vars", "JSON", &o->vars,
                      "a JSON object of more template variables, e.g.\n'{\"enable_thinking\": false}'"),
        CLI_TEXT_FLAG("--bos", "TEXT", &o->bos, "bos_token", .def_shown = "the tokenizer's"),
        CLI_TEXT_FLAG("--eos", "TEXT", &o->eos, "eos_token", .def_shown = "the tokenizer's"),
        CLI_TEXT_FLAG("--cases", "FILE", &o->cases,
                      "a JSON array of {\"messages_json\": \"[...]\", \"add_generation_prompt\":\n"
                      "bool, \"vars_json\": \"{...}\"} (messages and variables as JSON\n"
                      "text); prints a JSON array of {\"text\": ...} or {\"error\": ...},\none per case"),
        CLI_SWITCH_FLAG("--print-template", &o->print_template,
                        "print the template's source instead (and say when it is\nthe fallback)"),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    if (!!o->model + !!o->tokenizer + !!o->template_file != 1)
        return cli_usage_error("chat-template", "give exactly one of -m, --tokenizer and --template");
    if (o->cases && (o->messages || o->vars || o->add_generation_prompt))
        return cli_usage_error("chat-template",
                               "--cases carries its own messages, variables and generation prompt");
    return CLI_CONTINUE;
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
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc != CLI_CONTINUE) return rc;
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
