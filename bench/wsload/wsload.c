/*
 * wsload: an echo load generator that shares no code with volley.
 *
 * bench/compare.sh runs it beside `volley bench echo` so that no figure in
 * docs/benchmarks.md depends on our own client. It is plain C over epoll:
 * each connection does its own HTTP/1.1 upgrade, then keeps one masked
 * binary frame in flight (one write(2) per frame), reads with 64 KiB reads,
 * checks every echo's header at its boundary and times the round trip.
 *
 *   wsload HOST PORT CONNS SIZE SECONDS [WARMUP_SECONDS] [SERVER_PID]
 *
 * Prints one JSON object: round trips per second over the measured window,
 * latency percentiles, errors, and (with SERVER_PID) the server's CPU time
 * per round trip from /proc. Every run is bounded by SECONDS + WARMUP.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LAT_US 2000000 /* latencies above 2 s land in the last bin */
#define READ_BUF (64 * 1024)

struct conn {
	int fd;
	size_t at;	   /* bytes of the current echo received */
	size_t out;	   /* bytes of the current frame written */
	uint64_t sent_ns;  /* when the current frame was first written */
	int want_out;	   /* EPOLLOUT registered */
};

static uint32_t *lat; /* microsecond histogram */
static uint8_t *frame;
static size_t frame_len, echo_len, echo_hdr_len;
static uint8_t echo_hdr[10];

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "wsload: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* The server's user and system CPU time, in clock ticks. */
struct cpu {
	long long user, sys;
};

static struct cpu proc_cpu(int pid)
{
	struct cpu none = {-1, -1};
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return none;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the command may hold spaces */
	if (!p)
		return none;
	long long utime = 0, stime = 0;
	/* fields after ")": state(3) ... utime(14) stime(15) */
	int field = 2;
	for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
		field++;
		if (field == 14)
			utime = atoll(tok);
		if (field == 15) {
			stime = atoll(tok);
			break;
		}
	}
	return (struct cpu){utime, stime};
}

static int dial(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		fprintf(stderr, "wsload: cannot resolve %s:%s\n", host, port);
		exit(1);
	}
	int fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		die("connect");
	freeaddrinfo(ai);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/* A fixed key: the server must answer with its accept value, which
	 * this tool does not check (it checks the 101 and every echo). */
	char req[512];
	int len = snprintf(req, sizeof req,
			   "GET / HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
			   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			   "Sec-WebSocket-Version: 13\r\n\r\n",
			   host, port);
	if (write(fd, req, len) != len)
		die("write handshake");
	char resp[2048];
	size_t got = 0;
	/* Read byte by byte up to the blank line, so no frame bytes are eaten. */
	while (got < sizeof resp - 1) {
		ssize_t n = read(fd, resp + got, 1);
		if (n <= 0)
			die("read handshake");
		got++;
		if (got >= 4 && memcmp(resp + got - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	resp[got] = 0;
	if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
		fprintf(stderr, "wsload: handshake refused: %.40s\n", resp);
		exit(1);
	}
	return fd;
}

static void build_frame(size_t size)
{
	uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
	uint8_t hdr[14];
	size_t h = 0;
	hdr[h++] = 0x82;
	if (size < 126) {
		hdr[h++] = 0x80 | (uint8_t)size;
	} else if (size <= 0xffff) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (uint8_t)(size >> 8);
		hdr[h++] = (uint8_t)size;
	} else {
		hdr[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			hdr[h++] = (uint8_t)(size >> (8 * i));
	}
	/* The echo: the same header, unmasked. */
	memcpy(echo_hdr, hdr, h);
	echo_hdr[1] &= 0x7f;
	echo_hdr_len = h;
	echo_len = h + size;
	memcpy(hdr + h, key, 4);
	h += 4;
	frame_len = h + size;
	frame = malloc(frame_len);
	memcpy(frame, hdr, h);
	for (size_t i = 0; i < size; i++)
		frame[h + i] = (uint8_t)('a' + i % 26) ^ key[i % 4];
}

static int send_rest(struct conn *c)
{
	while (c->out < frame_len) {
		ssize_t n = write(c->fd, frame + c->out, frame_len - c->out);
		if (n < 0) {
			if (errno == EAGAIN)
				return 1;
			return -1;
		}
		c->out += (size_t)n;
	}
	return 0;
}

static uint64_t percentile(uint64_t total, double q)
{
	uint64_t want = (uint64_t)(q * (double)total + 0.5), seen = 0;
	if (want == 0)
		want = 1;
	for (uint32_t us = 0; us <= MAX_LAT_US; us++) {
		seen += lat[us];
		if (seen >= want)
			return us;
	}
	return MAX_LAT_US;
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: wsload HOST PORT CONNS SIZE SECONDS [WARMUP_SECONDS] [SERVER_PID]\n");
		return 2;
	}
	const char *host = argv[1], *port = argv[2];
	int conns = atoi(argv[3]);
	size_t size = (size_t)atol(argv[4]);
	double seconds = atof(argv[5]);
	double warmup = argc > 6 ? atof(argv[6]) : 1.0;
	int server_pid = argc > 7 ? atoi(argv[7]) : 0;
	if (conns < 1 || conns > 10000 || seconds <= 0 || seconds > 600 || warmup < 0 || warmup > 60) {
		fprintf(stderr, "wsload: CONNS 1-10000, SECONDS up to 600, WARMUP up to 60\n");
		return 2;
	}
	lat = calloc(MAX_LAT_US + 1, sizeof *lat);
	build_frame(size);
	struct conn *cs = calloc((size_t)conns, sizeof *cs);
	int ep = epoll_create1(0);
	if (ep < 0)
		die("epoll_create1");
	for (int i = 0; i < conns; i++) {
		cs[i].fd = dial(host, port);
		if (fcntl(cs[i].fd, F_SETFL, fcntl(cs[i].fd, F_GETFL) | O_NONBLOCK) < 0)
			die("nonblock");
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0)
			die("epoll_ctl");
	}
	uint64_t start = now_ns();
	uint64_t measure_from = start + (uint64_t)(warmup * 1e9);
	uint64_t deadline = measure_from + (uint64_t)(seconds * 1e9);
	struct cpu cpu_from = {-1, -1}, cpu_to = {-1, -1};
	int measuring = 0;
	for (int i = 0; i < conns; i++) {
		cs[i].sent_ns = now_ns();
		int r = send_rest(&cs[i]);
		if (r < 0)
			die("write");
		if (r > 0) {
			struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
			epoll_ctl(ep, EPOLL_CTL_MOD, cs[i].fd, &ev);
			cs[i].want_out = 1;
		}
	}
	uint8_t *buf = malloc(READ_BUF);
	struct epoll_event evs[256];
	uint64_t ops = 0, errors = 0;
	for (;;) {
		uint64_t t = now_ns();
		if (!measuring && t >= measure_from) {
			measuring = 1;
			if (server_pid)
				cpu_from = proc_cpu(server_pid);
		}
		if (t >= deadline)
			break;
		int n = epoll_wait(ep, evs, 256, 100);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int e = 0; e < n; e++) {
			struct conn *c = &cs[evs[e].data.u32];
			if (c->fd < 0)
				continue;
			if (evs[e].events & EPOLLOUT) {
				int r = send_rest(c);
				if (r == 0 && c->want_out) {
					struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[e].data.u32};
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
					c->want_out = 0;
				}
			}
			if (!(evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			ssize_t got = read(c->fd, buf, READ_BUF);
			if (got < 0 && errno == EAGAIN)
				continue;
			if (got <= 0) {
				errors++;
				close(c->fd);
				c->fd = -1;
				continue;
			}
			size_t off = 0;
			while (off < (size_t)got) {
				if (c->at < echo_hdr_len) {
					size_t take = echo_hdr_len - c->at;
					if (take > (size_t)got - off)
						take = (size_t)got - off;
					if (memcmp(buf + off, echo_hdr + c->at, take) != 0) {
						errors++;
						close(c->fd);
						c->fd = -1;
						break;
					}
				}
				size_t take = echo_len - c->at;
				if (take > (size_t)got - off)
					take = (size_t)got - off;
				c->at += take;
				off += take;
				if (c->at == echo_len) {
					uint64_t done = now_ns();
					c->at = 0;
					if (done >= measure_from && done < deadline) {
						uint64_t us = (done - c->sent_ns) / 1000;
						lat[us > MAX_LAT_US ? MAX_LAT_US : us]++;
						ops++;
					}
					/* The next frame, in one write. */
					c->out = 0;
					c->sent_ns = done;
					int r = send_rest(c);
					if (r < 0) {
						errors++;
						close(c->fd);
						c->fd = -1;
						break;
					}
					if (r > 0 && !c->want_out) {
						struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT,
									 .data.u32 = evs[e].data.u32};
						epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
						c->want_out = 1;
					}
				}
			}
		}
	}
	if (server_pid)
		cpu_to = proc_cpu(server_pid);
	double rate = (double)ops / seconds;
	printf("{\"generator\":\"wsload\",\"connections\":%d,\"size\":%zu,\"seconds\":%.1f,"
	       "\"ops\":%llu,\"ops_per_sec\":%.1f,\"errors\":%llu,"
	       "\"latency\":{\"p50_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu}",
	       conns, size, seconds, (unsigned long long)ops, rate, (unsigned long long)errors,
	       (unsigned long long)percentile(ops, 0.50), (unsigned long long)percentile(ops, 0.99),
	       (unsigned long long)percentile(ops, 0.999));
	if (server_pid && cpu_from.user >= 0 && cpu_to.user >= 0 && ops > 0) {
		double tick_us = 1e6 / (double)sysconf(_SC_CLK_TCK);
		double user = (double)(cpu_to.user - cpu_from.user) * tick_us / (double)ops;
		double sys = (double)(cpu_to.sys - cpu_from.sys) * tick_us / (double)ops;
		/* User space and kernel apart: on loopback most of a round trip is
		 * the kernel's TCP work, which no WebSocket library changes. */
		printf(",\"server_cpu_us_per_op\":%.3f,\"server_user_us_per_op\":%.3f,\"server_sys_us_per_op\":%.3f",
		       user + sys, user, sys);
	}
	printf("}\n");
	return 0;
}
