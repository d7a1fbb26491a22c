/* The HTTP layer on libmicrohttpd (see http.h). */
#include "server/http.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/error.h"

struct sq_http {
    struct MHD_Daemon *daemon;
    sq_http_options opts;
    char *api_key;
    sq_http_handler handler;
    void *user;
    int port;
    MHD_socket listen_fd; /* after sq_http_quiesce: ours to close once the daemon stops */
};

/* What one request has received so far. */
typedef struct upload {
    char *body;
    size_t len, cap;
    int too_large;
} upload;

int sq_http_equal_ct(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    for (size_t i = 0; i < lb; i++) diff |= (unsigned char)(la ? a[i % la] : 0) ^ (unsigned char)b[i];
    return diff == 0;
}

int sq_http_client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) return 1;
    char c;
    return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

void sq_http_error(sq_http_response *res, int status, const char *type, const char *param,
                   const char *message) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", message);
    cJSON_AddStringToObject(err, "type", type);
    if (param && param[0])
        cJSON_AddStringToObject(err, "param", param);
    else
        cJSON_AddNullToObject(err, "param");
    cJSON_AddNullToObject(err, "code");
    *res = (sq_http_response){.status = status, .content_type = "application/json"};
    res->body = cJSON_PrintUnformatted(root);
    res->body_len = res->body ? strlen(res->body) : 0;
    cJSON_Delete(root);
}

/* A handler's stream as MHD's content reader sees it. */
typedef struct stream_box {
    sq_http_stream_fn next;
    void *stream;
    void (*stream_free)(void *stream);
} stream_box;

/* MHD's content reader: the stream's pieces in order (`pos` is not needed) */
static ssize_t stream_piece(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_box *box = cls;
    ssize_t n = box->next(box->stream, buf, max);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

static void stream_done(void *cls) {
    stream_box *box = cls;
    if (box->stream_free) box->stream_free(box->stream);
    free(box);
}

static enum MHD_Result send_response(struct MHD_Connection *conn, sq_http_response *res) {
    struct MHD_Response *r;
    if (res->body)
        r = MHD_create_response_from_buffer(res->body_len, res->body, MHD_RESPMEM_MUST_FREE);
    else if (!res->next)
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    else {
        stream_box *box = malloc(sizeof *box);
        if (!box) {
            if (res->stream_free) res->stream_free(res->stream);
            return MHD_NO;
        }
        *box = (stream_box){res->next, res->stream, res->stream_free};
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_piece, box, stream_done);
        if (!r) stream_done(box);
    }
    if (!r) {
        if (res->body) free(res->body);
        return MHD_NO;
    }
    if (res->content_type) MHD_add_response_header(r, "Content-Type", res->content_type);
    if (res->next) MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)res->status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result answer_error(struct MHD_Connection *conn, int status, const char *type,
                                    const char *msg) {
    sq_http_response res;
    sq_http_error(&res, status, type, NULL, msg);
    return send_response(conn, &res);
}

static int authorized(const sq_http *h, struct MHD_Connection *conn, const char *path) {
    if (!h->api_key || strncmp(path, "/v1/", 4)) return 1;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7)) return 0;
    return sq_http_equal_ct(auth + 7, h->api_key);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    sq_http *h = cls;
    upload *up = *con_cls;
    if (!up) { /* the headers are in: refuse what is too large before reading it */
        if (!(up = calloc(1, sizeof *up))) return MHD_NO;
        *con_cls = up;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > h->opts.max_body_bytes) {
            up->too_large = 1;
            return answer_error(conn, 413, "invalid_request_error", "the request body is too large");
        }
        return MHD_YES;
    }
    if (*upload_data_size) { /* more of the body */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (up->too_large || up->len + n > h->opts.max_body_bytes) {
            up->too_large = 1;
            free(up->body);
            up->body = NULL;
            up->len = up->cap = 0;
            return MHD_YES;
        }
        if (up->len + n + 1 > up->cap) {
            size_t cap = up->cap ? up->cap : 4096;
            while (cap < up->len + n + 1) cap *= 2;
            char *b = realloc(up->body, cap);
            if (!b) return MHD_NO;
            up->body = b;
            up->cap = cap;
        }
        memcpy(up->body + up->len, upload_data, n);
        up->len += n;
        up->body[up->len] = 0;
        return MHD_YES;
    }
    if (up->too_large)
        return answer_error(conn, 413, "invalid_request_error", "the request body is too large");
    if (!authorized(h, conn, url))
        return answer_error(conn, 401, "invalid_request_error",
                            "a valid API key is required (Authorization: Bearer)");
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    sq_http_request req = {.method = method,
                           .path = url,
                           .body = up->body ? up->body : "",
                           .body_len = up->len,
                           .fd = ci ? ci->connect_fd : -1};
    sq_http_response res = {0};
    h->handler(h->user, &req, &res);
    return send_response(conn, &res);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)conn, (void)toe;
    upload *up = *con_cls;
    if (up) free(up->body);
    free(up);
    *con_cls = NULL;
}

SQ_NODISCARD sq_error *sq_http_start(const sq_http_options *opts, sq_http_handler handler, void *user,
                                     sq_http **out) {
    *out = NULL;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opts->port)};
    const char *host = opts->host ? opts->host : "127.0.0.1";
    if (opts->port < 0 || opts->port > 65535 || inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return sq_errorf(SQ_ERR_INVALID_ARG, "http: cannot listen on %s:%d (an IPv4 address and a port)",
                         host, opts->port);
    sq_http *h = calloc(1, sizeof *h);
    if (!h) return sq_errorf(SQ_ERR_NOMEM, "http: out of memory");
    h->opts = *opts;
    h->handler = handler;
    h->user = user;
    h->listen_fd = MHD_INVALID_SOCKET;
    if (opts->api_key && opts->api_key[0] && !(h->api_key = strdup(opts->api_key))) {
        free(h);
        return sq_errorf(SQ_ERR_NOMEM, "http: out of memory");
    }
    h->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC, 0, NULL,
        NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)opts->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)opts->idle_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    if (!h->daemon) {
        free(h->api_key);
        free(h);
        return sq_errorf(SQ_ERR_IO,
                         "http: cannot listen on %s:%d (in use, or not an address of this machine)", host,
                         opts->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : opts->port;
    *out = h;
    return NULL;
}

int sq_http_port(const sq_http *h) { return h->port; }

void sq_http_quiesce(sq_http *h) {
    if (h && h->daemon && h->listen_fd == MHD_INVALID_SOCKET) h->listen_fd = MHD_quiesce_daemon(h->daemon);
}

void sq_http_stop(sq_http *h) {
    if (!h) return;
    if (h->daemon) MHD_stop_daemon(h->daemon);
    if (h->listen_fd != MHD_INVALID_SOCKET) close(h->listen_fd);
    free(h->api_key);
    free(h);
}
