/* The reference side of pamoja-media's SRTP checks and benchmark: libsrtp2 (Debian's
 * libsrtp2-dev). Reads commands on stdin, one per line, and answers one line each:
 *
 *   key <80|32> <60 hex digits>   new sender and receiver contexts with that master key
 *   protect <hex>                 the packet protected by the sender context, in hex
 *   unprotect <hex>               the packet unprotected by the receiver context, in hex
 *                                 ("error <libsrtp status>" when refused)
 *   bench <protect|unprotect> <80|32> <size> <n>
 *                                 n packets of <size> bytes (12-byte header + payload),
 *                                 with increasing sequence numbers on a context kept
 *                                 between calls; prints the nanoseconds spent in libsrtp
 *                                 (for unprotect, packets are protected first, untimed)
 */
#include <srtp2/srtp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PACKET 2048
#define BATCH 4096

static int from_hex(const char *s, uint8_t *out, int max) {
    int n = 0;
    while (s[0] && s[1] && s[0] != '\n' && n < max) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1) return -1;
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static void print_hex(const uint8_t *b, int n) {
    for (int i = 0; i < n; i++) printf("%02x", b[i]);
    printf("\n");
}

static srtp_t make(int tag, const uint8_t *key, int outbound) {
    srtp_policy_t p;
    memset(&p, 0, sizeof p);
    if (tag == 32) {
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&p.rtp);
    } else {
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtp);
    }
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtcp);
    p.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
    p.key = (unsigned char *)key;
    p.window_size = 128;
    srtp_t s;
    if (srtp_create(&s, &p) != srtp_err_status_ok) {
        fprintf(stderr, "srtp_create failed\n");
        exit(1);
    }
    return s;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* One bench stream per (operation, tag): sender, receiver and next sequence number. */
struct stream {
    srtp_t tx, rx;
    uint32_t seq;
};

static void fill(uint8_t *b, uint16_t seq, int size) {
    memset(b, 0xab, size);
    b[0] = 0x80;
    b[1] = 111;
    b[2] = seq >> 8;
    b[3] = seq & 0xff;
    memset(b + 4, 0, 4);
    b[8] = 0x11; b[9] = 0x22; b[10] = 0x33; b[11] = 0x44;
}

int main(void) {
    static uint8_t buf[MAX_PACKET + SRTP_MAX_TRAILER_LEN];
    static uint8_t batch[BATCH][MAX_PACKET + SRTP_MAX_TRAILER_LEN];
    static int lens[BATCH];
    uint8_t key[30] = {0};
    uint8_t bench_key[30];
    for (int i = 0; i < 30; i++) bench_key[i] = (uint8_t)(i * 7 + 1);
    srtp_t tx = NULL, rx = NULL;
    struct stream streams[2][2] = {{{0}, {0}}, {{0}, {0}}};
    char line[8192];
    if (srtp_init() != srtp_err_status_ok) return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        char cmd[32], arg[16];
        int tag, size;
        long n;
        if (sscanf(line, "key %d %62s", &tag, (char *)buf) == 2) {
            if (from_hex((char *)buf, key, 30) != 30) { printf("error key\n"); continue; }
            if (tx) srtp_dealloc(tx);
            if (rx) srtp_dealloc(rx);
            tx = make(tag, key, 1);
            rx = make(tag, key, 0);
            printf("ok\n");
        } else if (sscanf(line, "bench %31s %d %d %ld", cmd, &tag, &size, &n) == 4) {
            int protect = strcmp(cmd, "protect") == 0;
            struct stream *s = &streams[protect][tag == 32];
            if (!s->tx) {
                s->tx = make(tag, bench_key, 1);
                s->rx = make(tag, bench_key, 0);
            }
            uint64_t spent = 0;
            while (n > 0) {
                int k = n < BATCH ? (int)n : BATCH;
                for (int i = 0; i < k; i++) {
                    fill(batch[i], (uint16_t)s->seq++, size);
                    lens[i] = size;
                }
                if (protect) {
                    uint64_t t = now_ns();
                    for (int i = 0; i < k; i++) srtp_protect(s->tx, batch[i], &lens[i]);
                    spent += now_ns() - t;
                } else {
                    for (int i = 0; i < k; i++) srtp_protect(s->tx, batch[i], &lens[i]);
                    uint64_t t = now_ns();
                    for (int i = 0; i < k; i++) {
                        if (srtp_unprotect(s->rx, batch[i], &lens[i]) != srtp_err_status_ok) {
                            fprintf(stderr, "bench unprotect failed\n");
                            return 1;
                        }
                    }
                    spent += now_ns() - t;
                }
                n -= k;
            }
            printf("%llu\n", (unsigned long long)spent);
        } else if (sscanf(line, "%31s", cmd) == 1 && tx &&
                   (strcmp(cmd, "protect") == 0 || strcmp(cmd, "unprotect") == 0)) {
            int len = from_hex(line + strlen(cmd) + 1, buf, MAX_PACKET);
            if (len < 0) { printf("error hex\n"); continue; }
            srtp_err_status_t st = strcmp(cmd, "protect") == 0 ? srtp_protect(tx, buf, &len)
                                                               : srtp_unprotect(rx, buf, &len);
            if (st != srtp_err_status_ok) printf("error %d\n", (int)st);
            else print_hex(buf, len);
        } else {
            (void)arg;
            printf("error command\n");
        }
    }
    return 0;
}
