#include "eval_json.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

long long eval_path_bytes(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (S_ISREG(st.st_mode)) return (long long)st.st_size;
    if (!S_ISDIR(st.st_mode)) return 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    long long total = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= (int)sizeof p) continue;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) total += st.st_size;
    }
    closedir(d);
    return total;
}

cJSON *eval_json_number(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

cJSON *eval_json_model(const char *path, const sq_model *model) {
    sq_model_info info;
    sq_model_get_info(model, &info);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "path", path);
    cJSON_AddNumberToObject(m, "bytes", (double)eval_path_bytes(path));
    cJSON_AddNumberToObject(m, "weight_bytes", (double)info.weight_bytes);
    cJSON_AddNumberToObject(m, "n_params", (double)info.n_params);
    cJSON_AddStringToObject(m, "arch", info.arch ? info.arch : "");
    cJSON_AddStringToObject(m, "file_format", info.file_format ? info.file_format : "");
    cJSON_AddNumberToObject(m, "vocab_size", info.vocab_size);
    cJSON_AddNumberToObject(m, "max_seq_len", info.max_seq_len);
    return m;
}

int eval_json_write(const char *path, const cJSON *report) {
    char *text = cJSON_Print(report);
    FILE *fp = text ? fopen(path, "w") : NULL;
    int ok = fp && fputs(text, fp) >= 0 && fputc('\n', fp) != EOF;
    if (fp && fclose(fp) != 0) ok = 0;
    if (!ok)
        fprintf(stderr, "squeeze: %s: cannot write the report: %s\n", path,
                text ? strerror(errno) : "out of memory");
    free(text);
    return !ok;
}
