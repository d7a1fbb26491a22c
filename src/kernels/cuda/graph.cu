/* CUDA graphs of a repeated step (the decode step's few hundred launches replayed as one): a step is named
 * by a key, the bytes of everything its launches bake in (pointers, sizes, flags). The first two times a
 * key is seen the step runs as it is (the first also sizes the scratch buffer, which a capture must not
 * grow); the third captures it into a graph that later steps of that key replay. What changes from step to
 * step without changing the key (token ids, positions, cache lengths, block tables) lives in device memory
 * that the kernels read when they run, so a replay needs no update. A capture that fails (a call that
 * cannot be captured) leaves that key to run as it is. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_common.cuh"

enum { GRAPH_SLOTS = 16, CAPTURE_AFTER = 2 };

struct graph_slot {
    void *key; /* key_bytes, plus the scratch buffer's address and size when captured */
    size_t key_bytes;
    int seen, failed;
    uint64_t last_use;
    cudaGraphExec_t exec;
};

struct sq_cuda_graphs {
    graph_slot slot[GRAPH_SLOTS];
    uint64_t clock;
};

static void drop(graph_slot *s) {
    if (s->exec) cudaGraphExecDestroy(s->exec);
    free(s->key);
    *s = graph_slot{};
}

void sq_cuda_graphs_free(sq_cuda *c) {
    if (!c->graphs) return;
    for (int i = 0; i < GRAPH_SLOTS; i++) drop(&c->graphs->slot[i]);
    free(c->graphs);
    c->graphs = NULL;
}

/* The slot of key (the scratch buffer is part of it: a graph holds its address), or a fresh one in place of
 * the least recently used. */
static graph_slot *find(sq_cuda_graphs *g, const void *key, size_t key_bytes, const sq_cuda *c) {
    const size_t total = key_bytes + sizeof c->scratch + sizeof c->scratch_bytes;
    graph_slot *lru = &g->slot[0];
    for (int i = 0; i < GRAPH_SLOTS; i++) {
        graph_slot *s = &g->slot[i];
        if (s->key && s->key_bytes == total && !memcmp(s->key, key, key_bytes) &&
            !memcmp((char *)s->key + key_bytes, &c->scratch, sizeof c->scratch) &&
            !memcmp((char *)s->key + key_bytes + sizeof c->scratch, &c->scratch_bytes,
                    sizeof c->scratch_bytes))
            return s;
        if (s->last_use < lru->last_use) lru = s;
    }
    drop(lru);
    lru->key = malloc(total);
    if (!lru->key) return NULL;
    memcpy(lru->key, key, key_bytes);
    memcpy((char *)lru->key + key_bytes, &c->scratch, sizeof c->scratch);
    memcpy((char *)lru->key + key_bytes + sizeof c->scratch, &c->scratch_bytes, sizeof c->scratch_bytes);
    lru->key_bytes = total;
    return lru;
}

void sq_cuda_graph_run(sq_cuda *c, const void *key, size_t key_bytes, void (*issue)(void *), void *arg) {
    if (!c->graphs) c->graphs = (sq_cuda_graphs *)calloc(1, sizeof *c->graphs);
    graph_slot *s = c->graphs && !c->error[0] ? find(c->graphs, key, key_bytes, c) : NULL;
    if (!s) {
        issue(arg);
        return;
    }
    s->last_use = ++c->graphs->clock;
    if (s->exec) {
        sq_cuda_note(c, cudaGraphLaunch(s->exec, c->stream), "graph launch");
        return;
    }
    if (s->failed || ++s->seen <= CAPTURE_AFTER) {
        issue(arg);
        return;
    }
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (e == cudaSuccess) {
        issue(arg);
        e = cudaStreamEndCapture(c->stream, &graph);
    }
    if (e == cudaSuccess && !c->error[0]) e = cudaGraphInstantiate(&s->exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (e != cudaSuccess || c->error[0] || !s->exec) {
        /* nothing ran: the capture's errors are the capture's, and the step runs as it is */
        cudaGetLastError();
        c->error[0] = 0;
        if (s->exec) cudaGraphExecDestroy(s->exec);
        s->exec = NULL;
        s->failed = 1;
        issue(arg);
        return;
    }
    sq_cuda_note(c, cudaGraphLaunch(s->exec, c->stream), "graph launch");
}
