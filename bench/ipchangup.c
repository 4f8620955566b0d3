/*
 * ipchangup.c - nng 1.5.2 #1518 under attack: a local peer connects to the gateway's ipc
 * socket and hangs up mid-handshake every R ms, while new callers (CLI processes) and a few
 * long-lived clients call Health. Reports, per attack period:
 *
 *   - new callers answered / tried, and their time to first answer (p50, max): spawn to exit 0
 *     of `shipgate -a ipc://... -d DEADLINE call Health {}` (the client's own retries included);
 *   - connects of the attacker that failed (ENOENT or ECONNREFUSED would mean a gap in the
 *     listener hand-over);
 *   - the long-lived clients' calls ok / failed and the pipes they had to redial;
 *   - listener hand-overs the gateway logged, and its fds before the attack and after it;
 *   - the CPU of the gateway's ipc watchdog thread ("sg-ipcwd") and of the whole gateway.
 *
 * usage: ipchangup [options] SHIPGATED SHIPGATE
 *   --periods LIST  attack periods in ms, comma-separated; 0 = no attacker (0,200,50,10,1)
 *   --seconds S     length of each phase (10)
 *   --callers N     new callers per phase, spread evenly over it (18)
 *   --deadline MS   each caller's -d, retries included (3000); `timeout` kills it at 2x
 *   --clients N     long-lived clients, each one Health call every 20 ms (2)
 *   --set K=V       passed to the gateway (repeatable), e.g. --set ipc_watchdog_ms=1000
 *
 * Each phase starts a fresh gateway (no upstream is needed for Health). One table row per
 * phase on stdout, and one JSON object per phase after the table. Exits 1 when a phase lost a
 * caller, leaked fds or left files behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "procstat.h"
#include "shipgate/v1/rpc.pb-c.h"

extern char **environ;

#define MAX_CALLERS 256
#define MAX_CLIENTS 32
#define MAX_SETS    16

/* ------------------------------------------------------------------ options and clock */

static const char *gw_bin, *cli_bin;
static int opt_seconds = 10, opt_callers = 18, opt_deadline = 3000, opt_clients = 2;
static const char *opt_sets[MAX_SETS];
static int nsets;

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* ------------------------------------------------------------------ the gateway */

struct gateway {
	pid_t pid;  /* the child */
	int out_fd; /* its stdout (the ready line) */
	int err_fd; /* its stderr, read by err_thread */
	pthread_t err_thread;
	atomic_long handovers; /* the highest count its hand-over log lines gave */
	atomic_long lines;     /* stderr lines seen */
	char path[108];        /* the public socket */
	char url[128];         /* ipc://path */
	char state[64];        /* its state directory */
};

/* Reads the gateway's stderr: the watchdog's log says how many listeners it replaced. */
static void *
err_reader(void *arg)
{
	struct gateway *g = arg;
	char buf[4096];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(g->err_fd, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		char *nl;
		while ((nl = strchr(buf, '\n')) != NULL) {
			*nl = '\0';
			atomic_fetch_add(&g->lines, 1);
			const char *k = strstr(buf, "listener replaced ");
			if (k != NULL) {
				long c = strtol(k + strlen("listener replaced "), NULL, 10);
				if (c > atomic_load(&g->handovers))
					atomic_store(&g->handovers, c);
			} else if (strstr(buf, "re-listening") != NULL) {
				atomic_fetch_add(&g->handovers, 1); /* the older watchdog's line */
			}
			memmove(buf, nl + 1, strlen(nl + 1) + 1);
			n = strlen(buf);
		}
		if (n == sizeof(buf) - 1)
			n = 0; /* a line too long to matter */
	}
	return NULL;
}

static int
gateway_start(struct gateway *g, int phase)
{
	char *argv[64];
	int n = 0, out[2], err[2];
	char st[96];

	memset(g, 0, sizeof(*g));
	snprintf(g->path, sizeof(g->path), "/tmp/sg-ipchangup-%d-%d.ipc", (int)getpid(), phase);
	snprintf(g->url, sizeof(g->url), "ipc://%s", g->path);
	snprintf(g->state, sizeof(g->state), "/tmp/sg-ipchangup-XXXXXX");
	if (mkdtemp(g->state) == NULL)
		return -1;
	snprintf(st, sizeof(st), "state_dir=%s", g->state);
	argv[n++] = (char *)gw_bin;
	argv[n++] = "--listen";
	argv[n++] = g->url;
	argv[n++] = "--set";
	argv[n++] = st;
	for (int i = 0; i < nsets; i++) {
		argv[n++] = "--set";
		argv[n++] = (char *)opt_sets[i];
	}
	argv[n] = NULL;
	if (pipe(out) != 0 || pipe(err) != 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	posix_spawn_file_actions_addclose(&fa, err[0]);
	int rv = posix_spawn(&g->pid, gw_bin, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(err[1]);
	if (rv != 0) {
		fprintf(stderr, "ipchangup: spawn %s: %s\n", gw_bin, strerror(rv));
		return -1;
	}
	g->out_fd = out[0];
	g->err_fd = err[0];
	pthread_create(&g->err_thread, NULL, err_reader, g);
	/* the ready line, 10 s at most */
	char line[512];
	size_t k = 0;
	int64_t until = now_ms() + 10000;
	while (k < sizeof(line) - 1) {
		struct pollfd p = {g->out_fd, POLLIN, 0};
		int64_t left = until - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0 || read(g->out_fd, line + k, 1) != 1)
			break;
		if (line[k] == '\n') {
			line[k] = '\0';
			if (strncmp(line, "shipgated ready on ", 19) == 0)
				return 0;
			k = 0;
			continue;
		}
		k++;
	}
	fprintf(stderr, "ipchangup: the gateway did not become ready\n");
	kill(g->pid, SIGKILL);
	waitpid(g->pid, NULL, 0);
	return -1;
}

/* SIGTERM, then 10 s, then SIGKILL. The exit status as from waitpid. */
static int
gateway_stop(struct gateway *g)
{
	int status = -1;
	kill(g->pid, SIGTERM);
	int64_t until = now_ms() + 10000;
	while (waitpid(g->pid, &status, WNOHANG) == 0) {
		if (now_ms() > until) {
			kill(g->pid, SIGKILL);
			waitpid(g->pid, &status, 0);
			break;
		}
		sleep_ms(10);
	}
	pthread_join(g->err_thread, NULL);
	close(g->out_fd);
	close(g->err_fd);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g->state);
	(void)!system(cmd);
	return status;
}

static int
count_fds(pid_t pid)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	int n = 0;
	if (d == NULL)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* utime + stime in ms of pid's thread named comm (the first one), or -1. */
static long
thread_cpu_ms(pid_t pid, const char *comm)
{
	char dir[64], p[384], buf[1024];
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	DIR *d = opendir(dir);
	long ms = -1;
	if (d == NULL)
		return -1;
	struct dirent *e;
	while (ms < 0 && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s/comm", dir, e->d_name);
		FILE *f = fopen(p, "r");
		if (f == NULL)
			continue;
		bool match =
		        fgets(buf, sizeof(buf), f) != NULL && strncmp(buf, comm, strlen(comm)) == 0;
		fclose(f);
		if (!match)
			continue;
		snprintf(p, sizeof(p), "%s/%s/stat", dir, e->d_name);
		if ((f = fopen(p, "r")) == NULL)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		const char *r = strrchr(buf, ')');
		unsigned long ut, st;
		/* after ")": state, then fields 4..13, then utime (14) and stime (15) */
		if (r != NULL &&
		    sscanf(r + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
		           &st) == 2)
			ms = (long)((ut + st) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
	}
	closedir(d);
	return ms;
}

/* Files other than the public socket whose names start with it (hand-over leftovers). */
static int
leftovers(const struct gateway *g)
{
	DIR *d = opendir("/tmp");
	const char *base = strrchr(g->path, '/') + 1;
	int n = 0;
	struct dirent *e;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += strncmp(e->d_name, base, strlen(base)) == 0 && strcmp(e->d_name, base) != 0;
	closedir(d);
	return n;
}

/* ------------------------------------------------------------------ the attacker */

struct attacker {
	const char *path;
	int period_ms;
	atomic_bool stop;
	long attacks; /* connects made */
	long gaps;    /* connects refused or not found: the public socket was missing */
	pthread_t thread;
};

/* Connect, then in turn: hang up at once, after half a header, after a whole one. */
static void *
attack(void *arg)
{
	struct attacker *a = arg;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static const uint8_t hdr[8] = {0, 'S', 'P', 0, 0x30, 0x30, 0, 0}; /* req0 */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", a->path);
	while (!atomic_load(&a->stop)) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			break;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			if (a->attacks % 3 == 1)
				(void)!write(fd, hdr, 4);
			else if (a->attacks % 3 == 2)
				(void)!write(fd, hdr, 8);
		} else if (errno == ENOENT || errno == ECONNREFUSED) {
			a->gaps++;
		}
		close(fd);
		a->attacks++;
		sleep_ms(a->period_ms);
	}
	return NULL;
}

/* ------------------------------------------------------------------ long-lived clients */

struct client {
	const char *url;
	atomic_bool *stop;
	long ok, failed;   /* Health calls */
	atomic_long pipes; /* pipes added: 1 + redials */
	pthread_t thread;
};

static void
client_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p;
	(void)ev;
	atomic_fetch_add(&((struct client *)arg)->pipes, 1);
}

static void *
client_run(void *arg)
{
	struct client *c = arg;
	nng_socket s;
	Shipgate__V1__RpcRequest env = SHIPGATE__V1__RPC_REQUEST__INIT;
	uint8_t buf[128];
	env.method = "/shipgate.v1.Shipgate/Health";
	env.request_id = "ipchangup";
	env.deadline_ms = 1000;
	size_t len = shipgate__v1__rpc_request__pack(&env, buf);
	if (nng_req0_open(&s) != 0)
		return NULL;
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 1000);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 1000);
	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 10);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 100);
	nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, client_pipe, c);
	if (nng_dial(s, c->url, NULL, 0) != 0) {
		nng_close(s);
		return NULL;
	}
	while (!atomic_load(c->stop)) {
		void *rep = NULL;
		size_t rlen = 0;
		bool ok = nng_send(s, buf, len, 0) == 0 &&
		          nng_recv(s, &rep, &rlen, NNG_FLAG_ALLOC) == 0;
		if (ok) {
			Shipgate__V1__RpcReply *r =
			        shipgate__v1__rpc_reply__unpack(NULL, rlen, rep);
			ok = r != NULL && r->status != NULL && r->status->code == 0;
			if (r != NULL)
				shipgate__v1__rpc_reply__free_unpacked(r, NULL);
			nng_free(rep, rlen);
		}
		if (ok)
			c->ok++;
		else
			c->failed++;
		sleep_ms(20);
	}
	nng_close(s);
	return NULL;
}

/* ------------------------------------------------------------------ new callers */

struct caller {
	const char *url;
	int64_t ms; /* spawn to exit */
	bool ok;    /* exited 0 */
	pthread_t thread;
};

static void *
caller_run(void *arg)
{
	struct caller *c = arg;
	char d[32], t[32];
	snprintf(d, sizeof(d), "%d", opt_deadline);
	snprintf(t, sizeof(t), "%d", (2 * opt_deadline + 999) / 1000);
	char *argv[] = {"timeout", "-k",           "1",  t, (char *)cli_bin,
	                "-a",      (char *)c->url, "-d", d, "call",
	                "Health",  "{}",           NULL};
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	int64_t t0 = now_ms();
	pid_t pid;
	int status = -1;
	if (posix_spawnp(&pid, "timeout", &fa, NULL, argv, environ) == 0)
		waitpid(pid, &status, 0);
	posix_spawn_file_actions_destroy(&fa);
	c->ms = now_ms() - t0;
	c->ok = status == 0;
	return NULL;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* ------------------------------------------------------------------ one phase */

struct result {
	int period_ms;
	long attacks, gaps;
	int tried, answered;
	int64_t p50_ms, max_ms;
	long client_ok, client_failed, client_redials;
	long handovers;
	int fds_before, fds_after;
	long wd_cpu_ms;
	double gw_cpu_s, wall_s;
	int exit_status, socket_left, leftover_files;
};

static int
phase(int idx, int period_ms, struct result *res)
{
	struct gateway g;
	memset(res, 0, sizeof(*res));
	res->period_ms = period_ms;
	if (gateway_start(&g, idx) != 0)
		return -1;
	/* one call first, so the count of fds is that of a gateway that has served */
	struct caller warm = {.url = g.url};
	caller_run(&warm);
	sleep_ms(200);
	res->fds_before = count_fds(g.pid);
	long wd0 = thread_cpu_ms(g.pid, "sg-ipcwd");
	ps_sample ps0, ps1;
	ps_read(g.pid, &ps0);
	int64_t t0 = now_ms();

	atomic_bool stop = false;
	struct attacker a = {.path = g.path, .period_ms = period_ms};
	atomic_init(&a.stop, false);
	if (period_ms > 0)
		pthread_create(&a.thread, NULL, attack, &a);
	struct client cl[MAX_CLIENTS];
	for (int i = 0; i < opt_clients; i++) {
		cl[i] = (struct client){.url = g.url, .stop = &stop};
		atomic_init(&cl[i].pipes, 0);
		pthread_create(&cl[i].thread, NULL, client_run, &cl[i]);
	}
	struct caller ca[MAX_CALLERS];
	long gap = opt_seconds * 1000L / opt_callers;
	for (int i = 0; i < opt_callers; i++) {
		ca[i] = (struct caller){.url = g.url};
		pthread_create(&ca[i].thread, NULL, caller_run, &ca[i]);
		sleep_ms(gap);
	}
	int64_t ms[MAX_CALLERS];
	for (int i = 0; i < opt_callers; i++) {
		pthread_join(ca[i].thread, NULL);
		ms[res->answered] = ca[i].ms;
		res->answered += ca[i].ok;
	}
	res->tried = opt_callers;
	atomic_store(&a.stop, true);
	atomic_store(&stop, true);
	if (period_ms > 0)
		pthread_join(a.thread, NULL);
	for (int i = 0; i < opt_clients; i++) {
		pthread_join(cl[i].thread, NULL);
		res->client_ok += cl[i].ok;
		res->client_failed += cl[i].failed;
		res->client_redials +=
		        atomic_load(&cl[i].pipes) > 0 ? atomic_load(&cl[i].pipes) - 1 : 0;
	}
	res->wall_s = (double)(now_ms() - t0) / 1000.0;
	ps_read(g.pid, &ps1);
	res->gw_cpu_s = ps1.cpu_s - ps0.cpu_s;
	long wd1 = thread_cpu_ms(g.pid, "sg-ipcwd");
	res->wd_cpu_ms = wd0 >= 0 && wd1 >= 0 ? wd1 - wd0 : -1;
	sleep_ms(1000); /* closed pipes and stray probes settle */
	res->fds_after = count_fds(g.pid);
	res->attacks = a.attacks;
	res->gaps = a.gaps;
	res->handovers = atomic_load(&g.handovers);
	qsort(ms, (size_t)res->answered, sizeof(ms[0]), cmp_i64);
	res->p50_ms = res->answered ? ms[res->answered / 2] : -1;
	res->max_ms = res->answered ? ms[res->answered - 1] : -1;
	int status = gateway_stop(&g);
	res->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	struct stat st;
	res->socket_left = lstat(g.path, &st) == 0;
	res->leftover_files = leftovers(&g);
	unlink(g.path);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *periods = "0,200,50,10,1";
	int i;
	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (i + 1 >= argc)
			break;
		if (strcmp(argv[i], "--periods") == 0)
			periods = argv[i + 1];
		else if (strcmp(argv[i], "--seconds") == 0)
			opt_seconds = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--callers") == 0)
			opt_callers = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--deadline") == 0)
			opt_deadline = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--clients") == 0)
			opt_clients = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--set") == 0 && nsets < MAX_SETS)
			opt_sets[nsets++] = argv[i + 1];
		else
			break;
	}
	if (argc - i != 2 || opt_seconds < 1 || opt_callers < 1 || opt_callers > MAX_CALLERS ||
	    opt_deadline < 1 || opt_clients < 0 || opt_clients > MAX_CLIENTS) {
		fprintf(stderr,
		        "usage: ipchangup [--periods LIST] [--seconds S] [--callers N] "
		        "[--deadline MS] [--clients N] [--set K=V]... SHIPGATED SHIPGATE\n");
		return 2;
	}
	gw_bin = argv[i];
	cli_bin = argv[i + 1];
	signal(SIGPIPE, SIG_IGN);

	struct result res[32];
	int n = 0, bad = 0;
	char list[256];
	snprintf(list, sizeof(list), "%s", periods);
	printf("%-7s %8s %5s %9s %7s %7s %13s %7s %9s %9s %11s\n", "period", "attacks", "gaps",
	       "answered", "p50_ms", "max_ms", "clients_ok/f", "redials", "handovers", "fds",
	       "wd_cpu");
	for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL && n < 32;
	     tok = strtok_r(NULL, ",", &save)) {
		struct result *r = &res[n];
		if (phase(n, atoi(tok), r) != 0) {
			fprintf(stderr, "ipchangup: phase %s failed to start\n", tok);
			return 1;
		}
		char fds[24], cpu[24], cok[24];
		snprintf(fds, sizeof(fds), "%d->%d", r->fds_before, r->fds_after);
		snprintf(cpu, sizeof(cpu), "%.2f%%", r->wd_cpu_ms / (10.0 * r->wall_s));
		snprintf(cok, sizeof(cok), "%ld/%ld", r->client_ok, r->client_failed);
		char per[16];
		snprintf(per, sizeof(per), r->period_ms ? "%d ms" : "none", r->period_ms);
		char ans[16];
		snprintf(ans, sizeof(ans), "%d/%d", r->answered, r->tried);
		printf("%-7s %8ld %5ld %9s %7lld %7lld %13s %7ld %9ld %9s %11s\n", per, r->attacks,
		       r->gaps, ans, (long long)r->p50_ms, (long long)r->max_ms, cok,
		       r->client_redials, r->handovers, fds, cpu);
		fflush(stdout);
		bad |= r->answered < r->tried || r->fds_after > r->fds_before + 2 ||
		       r->socket_left || r->leftover_files > 0 || r->exit_status != 0;
		n++;
	}
	for (int k = 0; k < n; k++) {
		struct result *r = &res[k];
		printf("{\"period_ms\": %d, \"attacks\": %ld, \"connect_gaps\": %ld, \"callers\": "
		       "%d, "
		       "\"answered\": %d, \"p50_ms\": %lld, \"max_ms\": %lld, \"clients_ok\": %ld, "
		       "\"clients_failed\": %ld, \"client_redials\": %ld, \"handovers\": %ld, "
		       "\"fds_before\": %d, \"fds_after\": %d, \"watchdog_cpu_ms\": %ld, "
		       "\"gateway_cpu_s\": %.3f, \"wall_s\": %.2f, \"exit\": %d, \"socket_left\": "
		       "%d, "
		       "\"leftover_files\": %d}\n",
		       r->period_ms, r->attacks, r->gaps, r->tried, r->answered,
		       (long long)r->p50_ms, (long long)r->max_ms, r->client_ok, r->client_failed,
		       r->client_redials, r->handovers, r->fds_before, r->fds_after, r->wd_cpu_ms,
		       r->gw_cpu_s, r->wall_s, r->exit_status, r->socket_left, r->leftover_files);
	}
	return bad ? 1 : 0;
}
