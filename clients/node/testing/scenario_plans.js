'use strict';

/**
 * The plans of EXAMPLES.md's five scenarios, built with the client's
 * builders, their URLs and sizes as parameters: test/builders.test.js
 * checks them against the JSON there, test/scenarios.test.js runs them
 * against weftd and the HTTP fixture. (As the Python client's
 * tests/scenario_plans.py.)
 */

const { call, parallel, race, offload } = require('..');

/** An http GET of `url` as the node `id`. */
function fetch(id, url, options = {}) {
  return call('http', { url }, { id, ...options });
}

/** 1. Dashboard: three sources at once, their values by name. */
function dashboard(user, posts, stats) {
  return parallel([fetch('user', user), fetch('recentPosts', posts), fetch('statistics', stats)]);
}

/**
 * 2. Search with failover: the first answer wins; the last resort has its
 * own timeout. With `hedgeDelay`, each starts that long after the one before.
 */
function search(primary, backup, fallback, { fallbackTimeout = 2, hedgeDelay } = {}) {
  return race(
    [fetch('primary', primary), fetch('backup', backup), fetch('fallback', fallback, { timeout: fallbackTimeout })],
    { hedgeDelay },
  );
}

/** 3. CPU work off the event loop: a digest on the default pool beside a timer. */
function digestAndHeartbeat(rounds = 200000) {
  return parallel([
    offload(call('hash', { data: 'large payload', rounds }), { id: 'digest', pool: 'default' }),
    call('sleep', { duration: '0.1s', value: 'on time' }, { id: 'heartbeat' }),
  ]);
}

/** A newsletter's mail to `id`@example.com, POSTed to `url`, three attempts. */
function send(id, url) {
  return call(
    'http',
    { method: 'POST', url, body: { to: `${id}@example.com` } },
    { id, retry: { maxAttempts: 3, initialBackoff: 0.2 } },
  );
}

/** 4. Newsletter: the sends, ten at a time at most, every failure kept. */
function newsletter(sends) {
  return parallel(sends, { join: 'JOIN_ALL_SETTLED', maxConcurrency: 10 });
}

/** The newsletter task's labels. */
const NEWSLETTER_LABELS = { job: 'newsletter' };

/** 5. Daily analytics: the lazy value's plan, a digest on the default pool. */
function dailyStats(data = 'stats', rounds = 500000) {
  return offload(call('hash', { data, rounds }));
}

/** The daily analytics lazy value's createLazyValue options. */
const DAILY_STATS_OPTIONS = { ttl: 86400, refreshAfter: 3600 };

module.exports = {
  dashboard,
  search,
  digestAndHeartbeat,
  send,
  newsletter,
  NEWSLETTER_LABELS,
  dailyStats,
  DAILY_STATS_OPTIONS,
};
