#include "core/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

sq_error *sq_mapped_file_open(const char *path, sq_mapped_file **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return sq_errorf(SQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return sq_errorf(SQ_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return sq_errorf(SQ_ERR_FORMAT, "%s: file is empty", path);
    }
    void *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (data == MAP_FAILED) return sq_errorf(SQ_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    sq_mapped_file *f = calloc(1, sizeof *f);
    char *p = strdup(path);
    if (!f || !p) {
        munmap(data, (size_t)st.st_size);
        free(f);
        free(p);
        return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    }
    f->data = data;
    f->size = (size_t)st.st_size;
    f->path = p;
    *out = f;
    return NULL;
}

void sq_mapped_file_close(sq_mapped_file *f) {
    if (!f) return;
    munmap((void *)f->data, f->size);
    free(f->path);
    free(f);
}
