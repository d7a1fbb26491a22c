/* A one-line terminal progress bar with rate and ETA. Redraws at most a few times a second and only when
 * stderr is a terminal, so logs and pipes stay clean. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"

struct cli_progress {
    char label[48];
    int active; /* stderr is a terminal */
    int drawn;
    double start, last_draw;
};

static void format_duration(double s, char *buf, size_t n) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

cli_progress *cli_progress_create(const char *label) {
    cli_progress *bar = calloc(1, sizeof *bar);
    if (!bar) return NULL;
    snprintf(bar->label, sizeof bar->label, "%s", label ? label : "");
    bar->active = isatty(STDERR_FILENO);
    bar->start = sq_monotonic_seconds();
    return bar;
}

void cli_progress_update(void *p, int64_t done, int64_t total) {
    cli_progress *bar = p;
    if (!bar || !bar->active || total <= 0) return;
    double t = sq_monotonic_seconds();
    if (done < total && bar->drawn && t - bar->last_draw < 0.2) return;
    bar->last_draw = t;
    bar->drawn = 1;
    double frac = done < 0 ? 0 : done > total ? 1 : (double)done / total;
    enum { WIDTH = 30 };
    char cells[WIDTH + 1];
    int full = (int)(frac * WIDTH);
    for (int i = 0; i < WIDTH; i++) cells[i] = i < full ? '#' : '.';
    cells[WIDTH] = 0;
    double elapsed = t - bar->start;
    char el[32], eta[32];
    format_duration(elapsed, el, sizeof el);
    format_duration(done > 0 ? elapsed * (total - done) / done : -1, eta, sizeof eta);
    fprintf(stderr, "\r%s [%s] %lld/%lld %5.1f%% %s elapsed, ETA %s ", bar->label, cells, (long long)done,
            (long long)total, 100 * frac, el, eta);
    fflush(stderr);
}

void cli_progress_free(cli_progress *bar) {
    if (!bar) return;
    if (bar->active && bar->drawn) fputc('\n', stderr);
    free(bar);
}
