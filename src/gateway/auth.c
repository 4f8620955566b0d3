/*
 * auth.c - provider tokens: one cached token and one queue of waiting calls per provider.
 */
#include "gateway/auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

/* One provider's token. */
struct token {
	pthread_mutex_t mtx; /* guards the fields below */
	char *value;         /* malloc'd bearer token, or NULL */
	int64_t expires_ms;  /* clock time after which it is not used */
	bool fetching;       /* a fetch is running */
	sg_list queue;       /* calls waiting for it (sg_token_waiter), oldest first */
};

struct sg_auth {
	int64_t (*clock)(void); /* milliseconds */
	size_t n;               /* providers */
	struct token t[];       /* one per provider */
};

sg_auth *
sg_auth_new(size_t n, int64_t (*clock)(void))
{
	sg_auth *au = calloc(1, sizeof(*au) + n * sizeof(au->t[0]));

	if (au == NULL)
		return NULL;
	au->clock = clock != NULL ? clock : sg_now_ms;
	au->n = n;
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_init(&au->t[i].mtx, NULL);
		sg_list_init(&au->t[i].queue);
	}
	return au;
}

void
sg_auth_free(sg_auth *au)
{
	if (au == NULL)
		return;
	for (size_t i = 0; i < au->n; i++) {
		free(au->t[i].value);
		pthread_mutex_destroy(&au->t[i].mtx);
	}
	free(au);
}

int64_t
sg_auth_margin_ms(int64_t lifetime_ms)
{
	int64_t m = lifetime_ms / 10;
	return m > 60000 ? 60000 : m;
}

/* The cached token when still good (t->mtx held): true, and *out its copy in a. */
static bool
token_copy(sg_auth *au, struct token *t, sg_arena *a, const char **out)
{
	if (t->value == NULL || au->clock() >= t->expires_ms)
		return false;
	*out = sg_arena_strdup(a, t->value);
	return true;
}

sg_token_res
sg_auth_take(sg_auth *au, size_t i, sg_arena *a, const char **tok, sg_token_waiter *w)
{
	struct token *t = &au->t[i];
	sg_token_res res;

	pthread_mutex_lock(&t->mtx);
	if (token_copy(au, t, a, tok)) {
		pthread_mutex_unlock(&t->mtx);
		return SG_TOKEN_HAVE;
	}
	sg_list_push_back(&t->queue, &w->link);
	w->queued = true;
	res = t->fetching ? SG_TOKEN_WAIT : SG_TOKEN_FETCH;
	t->fetching = true;
	pthread_mutex_unlock(&t->mtx);
	return res;
}

bool
sg_auth_peek(sg_auth *au, size_t i, sg_arena *a, const char **tok)
{
	struct token *t = &au->t[i];

	pthread_mutex_lock(&t->mtx);
	bool have = token_copy(au, t, a, tok);
	pthread_mutex_unlock(&t->mtx);
	return have;
}

bool
sg_auth_leave(sg_auth *au, size_t i, sg_token_waiter *w)
{
	struct token *t = &au->t[i];
	bool queued;

	pthread_mutex_lock(&t->mtx);
	if ((queued = w->queued)) { /* unlink in O(1) */
		sg_list_remove(&w->link);
		w->queued = false;
	}
	pthread_mutex_unlock(&t->mtx);
	return queued;
}

void
sg_auth_fetched(sg_auth *au, size_t i, sg_token_waiter *fetcher, sg_err err, const char *tok,
                int64_t lifetime_s, const sg_status *st)
{
	struct token *t = &au->t[i];

	sg_list q;
	sg_list_node *n;

	pthread_mutex_lock(&t->mtx);
	t->fetching = false;
	sg_list_move(&q, &t->queue);
	for (n = sg_list_first(&q); n != NULL; n = sg_list_next(&q, n))
		SG_CONTAINER_OF(n, sg_token_waiter, link)->queued =
		        false; /* taken: sg_auth_leave says so from now on */
	if (err == SG_OK && lifetime_s > 0) {
		char *copy = strdup(tok);
		if (copy != NULL) {
			int64_t life = lifetime_s * 1000;
			free(t->value);
			t->value = copy;
			t->expires_ms = au->clock() + life - sg_auth_margin_ms(life);
		}
	}
	pthread_mutex_unlock(&t->mtx);
	while ((n = sg_list_pop_front(&q)) != NULL) {
		sg_token_waiter *w = SG_CONTAINER_OF(n, sg_token_waiter, link);
		if (w != fetcher)
			w->done(w, err, tok, st);
	}
}

void
sg_auth_invalidate(sg_auth *au, size_t i, const char *tok)
{
	struct token *t = &au->t[i];

	pthread_mutex_lock(&t->mtx);
	if (t->value != NULL && tok != NULL && strcmp(t->value, tok) == 0) {
		free(t->value);
		t->value = NULL;
	}
	pthread_mutex_unlock(&t->mtx);
}
