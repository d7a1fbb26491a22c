/* The HTTP layer of the server, on libmicrohttpd: one thread per connection (a handler may block while its
 * request generates), a bound on connections, on the request body and on idle time, and an optional API key
 * (Authorization: Bearer KEY) compared in constant time. It knows nothing of models: a handler gets the
 * method, path and whole body and answers with a whole body or a stream of chunks. */
#ifndef SQ_SERVER_HTTP_H
#define SQ_SERVER_HTTP_H

#include <stddef.h>
#include <sys/types.h>

#include "squeeze.h"

typedef struct sq_http_request {
    const char *method, *path; /* "GET", "/v1/models" (query string removed) */
    const char *body;          /* [body_len] bytes, NUL-terminated */
    size_t body_len;
    int fd; /* the client's socket, for sq_http_client_gone; -1 if unknown */
} sq_http_request;

/* The next piece of a streamed body: writes up to max bytes to buf and returns their count (> 0), or -1 at
 * the end of the stream. May block until the piece is ready. */
typedef ssize_t (*sq_http_stream_fn)(void *stream, char *buf, size_t max);

typedef struct sq_http_response {
    int status;
    const char *content_type;
    char *body; /* malloc'ed, [body_len]; the layer frees it */
    size_t body_len;
    /* or a stream (body NULL): next() pieces, then stream_free(stream) when the connection is done with it,
     * also when the client went away before the end */
    sq_http_stream_fn next;
    void *stream;
    void (*stream_free)(void *stream);
} sq_http_response;

/* Answers a request: fills *res (status and body, or a stream). Called on the connection's thread. */
typedef void (*sq_http_handler)(void *user, const sq_http_request *req, sq_http_response *res);

typedef struct sq_http_options {
    const char *host;      /* address to listen on; NULL: "127.0.0.1" */
    int port;              /* 0: any free port (sq_http_port says which) */
    const char *api_key;   /* NULL/"": none; else requests to paths starting "/v1/" need it */
    size_t max_body_bytes; /* larger bodies get 413 */
    int idle_timeout_s;    /* a connection idle this long is closed (slow and half-open clients) */
    int max_connections;   /* more are refused at accept */
} sq_http_options;

typedef struct sq_http sq_http;

SQ_NODISCARD sq_error *sq_http_start(const sq_http_options *opts, sq_http_handler handler, void *user,
                                     sq_http **out);
int sq_http_port(const sq_http *h);
/* Stops accepting new connections; those open go on. */
void sq_http_quiesce(sq_http *h);
/* Closes every connection and frees (after the handlers and streams have returned). */
void sq_http_stop(sq_http *h);

/* Whether the peer of socket fd has closed its side or the connection is broken. */
int sq_http_client_gone(int fd);
/* Whether a and b are equal, taking the same time whatever their contents (lengths may leak). */
int sq_http_equal_ct(const char *a, const char *b);
/* An OpenAI-style error body {"error": {"message", "type", "param", "code"}} into res; param may be NULL. */
void sq_http_error(sq_http_response *res, int status, const char *type, const char *param,
                   const char *message);

#endif
