/* A plain TCP client, as any C program writes one: socket(AF_INET, SOCK_STREAM, 0).
 * Built static (gcc -static), so no LD_PRELOAD (mptcpize) could reach it.  It reports what the
 * kernel made of its socket, sends SIZE bytes of a pattern, reads the server's SHA-256 of
 * them, prints one line of JSON, then holds the connection until stdin closes.
 * Usage: client ADDRESS PORT SIZE */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SOL_MPTCP
#define SOL_MPTCP 284
#endif
#define MPTCP_INFO 1

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &to.sin_addr);
    if (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0) { perror("connect"); return 1; }
    int protocol = 0;
    socklen_t len = sizeof(protocol);
    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len);
    unsigned char info[256];
    len = sizeof(info);
    int info_errno = getsockopt(fd, SOL_MPTCP, MPTCP_INFO, info, &len) < 0 ? errno : 0;
    long size = atol(argv[3]);
    unsigned char block[4096];
    for (long sent = 0; sent < size;) {
        long n = size - sent < (long)sizeof(block) ? size - sent : (long)sizeof(block);
        for (long i = 0; i < n; i++) block[i] = (unsigned char)((sent + i) % 251);
        ssize_t done = write(fd, block, n);
        if (done <= 0) { perror("write"); return 1; }
        sent += done;
    }
    char digest[65] = {0};
    for (size_t got = 0; got < 64;) {
        ssize_t n = read(fd, digest + got, 64 - got);
        if (n <= 0) { perror("read"); return 1; }
        got += n;
    }
    printf("{\"protocol\": %d, \"mptcp_info_errno\": %d, \"digest\": \"%s\"}\n",
           protocol, info_errno, digest);
    fflush(stdout);
    char hold;
    while (read(0, &hold, 1) > 0) {}
    close(fd);
    return 0;
}
