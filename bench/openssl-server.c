// A bare OpenSSL mTLS server for bench/idle.bench.ts: one thread, epoll, non-blocking sockets,
// each request answered with a fixed 200 and the connection kept open. It shows what OpenSSL
// itself keeps per idle connection, with and without SSL_MODE_RELEASE_BUFFERS (nginx sets
// that mode; Node offers no way to, neither as an option nor in the OpenSSL configuration).
// Built by the bench with the system's gcc and libssl-dev.
//
// usage: openssl-server PORT CERT_CHAIN KEY CLIENT_CA RELEASE_BUFFERS(0|1)
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
  int fd;
  SSL *ssl;
  int established;
} conn_t;

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-type: text/plain\r\n\r\nok\n";

static void drop(int ep, conn_t *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  SSL_free(c->ssl);
  close(c->fd);
  free(c);
}

/** Handshake, then every complete request read is answered. Returns 0 when the connection is done. */
static int serve(conn_t *c) {
  static char buf[16384];
  if (!c->established) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
    }
    c->established = 1;
  }
  for (;;) {
    int r = SSL_read(c->ssl, buf, sizeof buf);
    if (r <= 0) {
      int e = SSL_get_error(c->ssl, r);
      return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
    }
    if (r >= 4 && memcmp(buf + r - 4, "\r\n\r\n", 4) == 0 && SSL_write(c->ssl, RESPONSE, sizeof RESPONSE - 1) <= 0) return 0;
  }
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s PORT CERT_CHAIN KEY CLIENT_CA RELEASE_BUFFERS(0|1)\n", argv[0]);
    return 2;
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 || SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_load_verify_locations(ctx, argv[4], NULL) != 1) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(argv[4]));
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"bench", 5);
  if (atoi(argv[5])) SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

  int one = 1;
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, 1024) != 0) {
    perror("listen");
    return 1;
  }
  int ep = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
  fprintf(stderr, "%s, SSL_MODE_RELEASE_BUFFERS %s, listening on 127.0.0.1:%s\n", OpenSSL_version(OPENSSL_VERSION), atoi(argv[5]) ? "on" : "off", argv[1]);

  struct epoll_event events[128];
  for (;;) {
    int n = epoll_wait(ep, events, 128, -1);
    for (int i = 0; i < n; i++) {
      conn_t *c = events[i].data.ptr;
      if (c == NULL) {
        int fd;
        while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conn_t *nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          nc->ssl = SSL_new(ctx);
          SSL_set_fd(nc->ssl, fd);
          SSL_set_accept_state(nc->ssl);
          struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
      } else if ((events[i].events & (EPOLLHUP | EPOLLERR)) || !serve(c)) {
        drop(ep, c);
      }
    }
  }
}
