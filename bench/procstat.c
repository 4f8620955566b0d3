/*
 * procstat.c - /proc readings of the process under test (see procstat.h).
 */
#include "procstat.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

double
ps_self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

int
ps_read(int pid, ps_sample *s)
{
	char path[64], line[256];
	FILE *f;

	memset(s, 0, sizeof(*s));
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			s->rss_kib = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "VmHWM:", 6) == 0)
			s->hwm_kib = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "Threads:", 8) == 0)
			s->threads = strtol(line + 8, NULL, 10);
	}
	fclose(f);
	/* /proc/PID/stat: fields 14 and 15 (utime, stime) in clock ticks, after "(comm)". */
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	char buf[1024];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (p != NULL) {
		unsigned long ut = 0, st = 0;
		/* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt
		 * cmajflt utime(14) stime(15) */
		if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
		           &st) == 2)
			s->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	}
	return 0;
}

static void *
sampler_main(void *arg)
{
	ps_sampler *p = arg;
	struct timespec ts = {p->interval_ms / 1000, (long)(p->interval_ms % 1000) * 1000000L};

	for (;;) {
		ps_sample s;
		int rv = ps_read(p->pid, &s);
		pthread_mutex_lock(&p->mtx);
		if (rv == 0) {
			if (s.rss_kib > p->rss_max_kib)
				p->rss_max_kib = s.rss_kib;
			if (s.threads > p->threads_max)
				p->threads_max = s.threads;
			if (s.threads < p->threads_min)
				p->threads_min = s.threads;
			p->samples++;
		}
		bool stop = p->stop;
		pthread_mutex_unlock(&p->mtx);
		if (stop || rv != 0)
			return NULL;
		nanosleep(&ts, NULL);
	}
}

int
ps_start(ps_sampler *p, int pid, int interval_ms)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mtx, NULL);
	p->pid = pid;
	p->interval_ms = interval_ms > 0 ? interval_ms : 10;
	if (pid <= 0)
		return 0;
	if (ps_read(pid, &p->before) != 0)
		return -1;
	p->rss_max_kib = p->before.rss_kib;
	p->threads_min = p->threads_max = p->before.threads;
	if (pthread_create(&p->thread, NULL, sampler_main, p) != 0)
		return -1;
	p->running = true;
	return 0;
}

void
ps_stop(ps_sampler *p)
{
	if (p->pid <= 0)
		return;
	if (p->running) {
		pthread_mutex_lock(&p->mtx);
		p->stop = true;
		pthread_mutex_unlock(&p->mtx);
		pthread_join(p->thread, NULL);
		p->running = false;
	}
	if (ps_read(p->pid, &p->after) == 0) {
		if (p->after.rss_kib > p->rss_max_kib)
			p->rss_max_kib = p->after.rss_kib;
		if (p->after.threads > p->threads_max)
			p->threads_max = p->after.threads;
	}
}

void
ps_json(const ps_sampler *p, FILE *f)
{
	fprintf(f,
	        "\"proc\": {\"pid\": %d, \"rss_before_kib\": %ld, \"rss_max_kib\": %ld, "
	        "\"rss_after_kib\": %ld, \"hwm_kib\": %ld, \"threads_before\": %ld, "
	        "\"threads_min\": %ld, \"threads_max\": %ld, \"threads_after\": %ld, "
	        "\"cpu_s\": %.3f, \"samples\": %ld}",
	        p->pid, p->before.rss_kib, p->rss_max_kib, p->after.rss_kib,
	        p->after.hwm_kib > p->before.hwm_kib ? p->after.hwm_kib : p->before.hwm_kib,
	        p->before.threads, p->threads_min, p->threads_max, p->after.threads,
	        p->after.cpu_s - p->before.cpu_s, p->samples);
}
