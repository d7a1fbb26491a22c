/* Reads Linux's scheduler statistics: /proc/self/task/TID/schedstat ("cpu-time run-delay timeslices", ns) for
 * the run-queue delay of each of our threads, and the aggregate "cpu" line of /proc/stat (USER_HZ ticks) for
 * steal time. Neither needs privileges; both exist on every kernel with CONFIG_SCHED_INFO. */
#include "core/cpu_wait.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "squeeze.h"

static int read_run_delay(uint64_t *total) {
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return 0;
    int ok = 1;
    *total = 0;
    for (struct dirent *e; ok && (e = readdir(dir));) {
        if (e->d_name[0] == '.') continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/schedstat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue; /* the thread ended while we listed them */
        unsigned long long cpu, delay;
        ok = fscanf(f, "%llu %llu", &cpu, &delay) == 2;
        fclose(f);
        if (ok) *total += delay;
    }
    closedir(dir);
    return ok;
}

static int read_steal(uint64_t *ns, int *n_cpus) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    char line[512];
    unsigned long long v[8] = {0};
    int ok = fgets(line, sizeof line, f) && sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                                                   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8;
    int cpus = 0;
    while (ok && fgets(line, sizeof line, f))
        if (strncmp(line, "cpu", 3) == 0 && line[3] >= '0' && line[3] <= '9') cpus++;
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (!ok || hz <= 0 || cpus < 1) return 0;
    *ns = v[7] * (uint64_t)(1000000000 / hz);
    *n_cpus = cpus;
    return 1;
}

void sq_cpu_wait_sample_now(sq_cpu_wait_sample *s) {
    memset(s, 0, sizeof *s);
    s->wall_s = sq_monotonic_seconds();
    s->valid = read_run_delay(&s->run_delay_ns) && read_steal(&s->steal_ns, &s->n_cpus);
}

double sq_cpu_wait_fraction(const sq_cpu_wait_sample *a, const sq_cpu_wait_sample *b, int n_threads) {
    double wall = b->wall_s - a->wall_s;
    if (!a->valid || !b->valid || wall <= 0 || n_threads < 1) return NAN;
    /* a thread that ended in between lowers the sum: never report negative waiting */
    double delay = b->run_delay_ns > a->run_delay_ns ? (double)(b->run_delay_ns - a->run_delay_ns) : 0;
    double steal = b->steal_ns > a->steal_ns ? (double)(b->steal_ns - a->steal_ns) : 0;
    double share = n_threads < a->n_cpus ? (double)n_threads / a->n_cpus : 1.0;
    return (delay + steal * share) * 1e-9 / (wall * n_threads);
}
