#include "formats/out_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

sq_error *sq_out_open(sq_out_file *o, const char *path) {
    memset(o, 0, sizeof *o);
    o->path = path;
    size_t n = strlen(path) + 32;
    if (!(o->tmp_path = malloc(n))) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    snprintf(o->tmp_path, n, "%s.partial-%ld", path, (long)getpid());
    o->fp = fopen(o->tmp_path, "wb");
    if (!o->fp) {
        sq_error *err = sq_errorf(SQ_ERR_IO, "%s: cannot create: %s", o->tmp_path, strerror(errno));
        free(o->tmp_path);
        o->tmp_path = NULL;
        return err;
    }
    return NULL;
}

sq_error *sq_out_check(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return sq_errorf(SQ_ERR_IO, "%s: is a directory, not a file name", path);
    sq_out_file o;
    sq_error *err = sq_out_open(&o, path);
    if (err) return err;
    fclose(o.fp);
    remove(o.tmp_path);
    free(o.tmp_path);
    return NULL;
}

void sq_out_write(sq_out_file *o, const void *data, size_t n) {
    if (o->err || n == 0) return;
    if (fwrite(data, 1, n, o->fp) != n) {
        o->err = errno ? errno : EIO;
        return;
    }
    o->offset += n;
}

void sq_out_pad(sq_out_file *o, size_t align) {
    static const unsigned char zeros[64];
    while (o->offset % align) {
        size_t n = align - (size_t)(o->offset % align);
        sq_out_write(o, zeros, n < sizeof zeros ? n : sizeof zeros);
        if (o->err) return;
    }
}

void sq_out_u32(sq_out_file *o, uint32_t v) { sq_out_write(o, &v, 4); }
void sq_out_u64(sq_out_file *o, uint64_t v) { sq_out_write(o, &v, 8); }

sq_error *sq_out_close(sq_out_file *o, sq_error *failed) {
    if (!o->fp) return failed;
    if (fclose(o->fp) != 0 && !o->err) o->err = errno ? errno : EIO;
    o->fp = NULL;
    if (!failed && o->err) failed = sq_errorf(SQ_ERR_IO, "%s: write failed: %s", o->path, strerror(o->err));
    if (!failed && rename(o->tmp_path, o->path) != 0)
        failed =
            sq_errorf(SQ_ERR_IO, "%s: cannot move the written file into place: %s", o->path, strerror(errno));
    if (failed) remove(o->tmp_path);
    free(o->tmp_path);
    o->tmp_path = NULL;
    return failed;
}
