'use strict';

// The five scenarios of EXAMPLES.md, end to end: their plans
// (testing/scenario_plans.js) run by weftd, calling the HTTP fixture where
// the examples call other services.

const test = require('node:test');
const assert = require('node:assert/strict');
const weft = require('..');
const { useServers, unique } = require('../testing/servers');
const plans = require('../testing/scenario_plans');

const { lazy, isTerminal } = weft;
const servers = useServers();

/** The newsletter watch's bound, in seconds: a watch that hangs fails the test. */
const WATCH_TIMEOUT = 60;

// The child of `outcome` with this id.
function child(outcome, id) {
  const found = outcome.children.find((c) => c.id === id);
  assert.ok(found, `no child ${id} in ${outcome.children.map((c) => c.id)}`);
  return found;
}

function elapsedSeconds(outcome) {
  return (outcome.endTime - outcome.startTime) / 1000;
}

test('dashboard: three sources at once, values by name', async () => {
  const outcome = await servers.client.run(
    plans.dashboard(
      servers.url('/users/42?delay=1000'),
      servers.url('/users/42/posts?delay=1000'),
      servers.url('/stats/42?delay=1000'),
    ),
  );
  assert.equal(outcome.state, 'NODE_STATE_SUCCEEDED');
  const { user, recentPosts, statistics } = outcome.value;
  assert.deepEqual(Object.keys(outcome.value).sort(), ['recentPosts', 'statistics', 'user']);
  assert.equal(user.status, 200);
  assert.deepStrictEqual(user.body, { id: 42, name: 'Ada Lovelace' });
  assert.deepStrictEqual(recentPosts.body.map((post) => post.title), ['Notes on the Analytical Engine', 'On Bernoulli numbers']);
  assert.deepStrictEqual(statistics.body, { followers: 1843, posts: 2 });
  // Each source answers after 1 s, all at once rather than one after
  // another: they overlap, and the whole takes less than their sum. (No
  // bound on the whole itself: two busy cores may make it slow.)
  const durations = outcome.children.map(elapsedSeconds);
  assert.ok(durations.every((seconds) => seconds >= 1), `the sources took ${durations} s`);
  const lastStart = Math.max(...outcome.children.map((c) => c.startTime));
  const firstEnd = Math.min(...outcome.children.map((c) => c.endTime));
  assert.ok(lastStart < firstEnd, 'a source started after another had ended');
  const sum = durations.reduce((a, b) => a + b);
  assert.ok(elapsedSeconds(outcome) < sum, `the dashboard took ${elapsedSeconds(outcome)} s, its sources ${sum} s in all`);
});

test('dashboard: one source fails, the others are cancelled and the error names it', async () => {
  const outcome = await servers.client.run(
    plans.dashboard(
      servers.url('/users/42?delay=10000'),
      servers.url('/users/42/posts?delay=10000'),
      servers.url('/stats/42?status=500&delay=100'),
    ),
  );
  assert.equal(outcome.state, 'NODE_STATE_FAILED');
  assert.equal(outcome.error.code, 'UNAVAILABLE');
  assert.match(outcome.error.message, /statistics/);
  assert.equal(child(outcome, 'statistics').error.reason, 'HTTP_STATUS');
  for (const id of ['user', 'recentPosts']) {
    assert.deepEqual([child(outcome, id).state, child(outcome, id).error.reason], ['NODE_STATE_CANCELLED', 'SIBLING_FAILED']);
  }
  assert.ok(elapsedSeconds(outcome) < 5, 'the slow sources were not cancelled');
});

test('search with failover: the backup wins, the failing primary does not end the race', async () => {
  const search = (server, query) => servers.url(`/search?q=weft&server=${server}&${query}`);
  const outcome = await servers.client.run(plans.search(search('a', 'status=503'), search('b', 'delay=200'), search('c', 'hang=1')));
  assert.equal(outcome.state, 'NODE_STATE_SUCCEEDED');
  assert.equal(outcome.winner, 'backup');
  assert.deepStrictEqual(outcome.value.body, { server: 'b', hits: ['weft', 'weft.v1.Orchestrator'] });
  const primary = child(outcome, 'primary');
  assert.equal(primary.state, 'NODE_STATE_FAILED');
  assert.deepEqual([primary.error.code, primary.error.reason], ['UNAVAILABLE', 'HTTP_STATUS']);
  const fallback = child(outcome, 'fallback');
  assert.equal(fallback.state, 'NODE_STATE_CANCELLED');
  assert.equal(fallback.error.reason, 'RACE_LOST');
  assert.ok(elapsedSeconds(outcome) < 2, 'the race waited for its last resort');
});

test('search with hedging: a primary that answers in time leaves the others unstarted', async () => {
  const outcome = await servers.client.run(
    plans.search(servers.url('/search?server=a&delay=50'), servers.url('/search?server=b'), servers.url('/search?server=c'), {
      hedgeDelay: 5,
    }),
  );
  assert.equal(outcome.winner, 'primary');
  assert.equal(outcome.value.body.server, 'a');
  for (const id of ['backup', 'fallback']) {
    assert.deepEqual([child(outcome, id).state, child(outcome, id).attempts], ['NODE_STATE_SKIPPED', 0]);
  }
});

test('CPU work off the event loop: the digest on a pool, the heartbeat on time', async () => {
  // Rounds enough to outlast the 0.1 s heartbeat by far: were the digest
  // not offloaded, the heartbeat would end after it.
  const outcome = await servers.client.run(plans.digestAndHeartbeat(2_000_000));
  assert.equal(outcome.state, 'NODE_STATE_SUCCEEDED');
  assert.deepStrictEqual(outcome.value, {
    // SHA-256 of "large payload", then of each digest, 2 000 000 times.
    digest: 'cd337f0797734f8547cba9c8835896de5521f5108cc3bd9ec92e63e0f6d256cb',
    heartbeat: 'on time',
  });
  const digest = child(outcome, 'digest');
  assert.equal(digest.kind, 'NODE_KIND_OFFLOAD');
  assert.equal(digest.children[0].kind, 'NODE_KIND_CALL');
  const heartbeat = child(outcome, 'heartbeat');
  const seconds = elapsedSeconds(heartbeat);
  assert.ok(seconds >= 0.1 && seconds < 1, `the heartbeat took ${seconds} s`);
  assert.ok(
    heartbeat.endTime < digest.endTime,
    `the heartbeat ended at ${heartbeat.endTime.toISOString()}, after the digest (${digest.endTime.toISOString()})`,
  );
});

test('newsletter: a background task, every send kept, retried, found by label, watched to the end', async (t) => {
  const run = unique('newsletter');
  const send = (to, failFirst) => plans.send(to, servers.url(`/send?fail_first=${failFirst}&key=${run}-${to}`));
  const labels = { ...plans.NEWSLETTER_LABELS, run };
  const created = await servers.client.createTask(plans.newsletter([send('ada', 2), send('grace', 5), send('alan', 0)]), {
    labels,
  });
  servers.removeTaskAfter(t, created.name);
  assert.match(created.name, /^tasks\/[0-9a-f]{32}$/);
  assert.deepEqual(created.labels, labels);

  const listed = await servers.client.listTasks({ labels: { run } });
  assert.deepEqual(listed.map((task) => task.name), [created.name]);

  const snapshots = [];
  for await (const task of servers.client.watchTask(created.name, { timeout: WATCH_TIMEOUT })) snapshots.push(task);
  const last = snapshots.at(-1);
  assert.ok(snapshots.slice(0, -1).every((task) => !isTerminal(task)), 'a snapshot after the end');
  assert.equal(last.state, 'TASK_STATE_SUCCEEDED');
  assert.deepEqual(last.progress, { leavesTotal: 3, leavesDone: 3, leavesFailed: 1, leavesRunning: 0 });

  const { outcome } = last;
  assert.equal(outcome.value.ada.state, 'NODE_STATE_SUCCEEDED');
  assert.deepStrictEqual(outcome.value.ada.value.body, {
    method: 'POST',
    path: '/send',
    query: `fail_first=2&key=${run}-ada`,
    body: '{"to":"ada@example.com"}',
  });
  const { grace } = outcome.value;
  assert.deepEqual([grace.state, grace.error.code], ['NODE_STATE_FAILED', 'UNAVAILABLE']);
  assert.match(grace.error.message, /answered 503/);
  assert.equal(outcome.value.alan.state, 'NODE_STATE_SUCCEEDED');
  assert.deepEqual(
    outcome.children.map((c) => [c.id, c.attempts]),
    [['ada', 3], ['grace', 3], ['alan', 1]],
  );

  const finished = await servers.client.listTasks({ labels: { run }, states: ['TASK_STATE_SUCCEEDED'] });
  assert.deepEqual(finished.map((task) => task.name), [created.name]);
});

test('daily analytics: one computation for 200 callers at once, cached, reset', async (t) => {
  const { client } = servers;
  const id = unique('daily_stats');
  servers.removeLazyValueAfter(t, id);
  const plan = plans.dailyStats(id, 500000);
  const digest = plan.offload.child;
  const declared = await client.createLazyValue(id, plan, plans.DAILY_STATS_OPTIONS);
  assert.equal(declared.name, `lazyValues/${id}`);
  assert.equal(declared.state, 'LAZY_VALUE_STATE_EMPTY');
  assert.deepEqual([declared.ttl, declared.refreshAfter], [86400, 3600]);

  const resolves = await Promise.all(Array.from({ length: 200 }, () => client.resolveLazyValue(id)));
  const { value } = (await client.run(digest, { detail: 'root' }));
  assert.match(value, /^[0-9a-f]{64}$/);
  assert.ok(resolves.every((r) => r.value === value && r.generation === declared.generation));
  let { stats, state } = await client.getLazyValue(id);
  assert.equal(state, 'LAZY_VALUE_STATE_READY');
  assert.equal(stats.loads, 1, 'more than one computation');
  assert.equal(stats.hits + stats.misses, 200);
  assert.ok(stats.misses > 0, 'no resolve waited for the computation');
  assert.equal(resolves.filter((r) => !r.cacheHit).length, stats.misses);

  // A plan's lazy node shares the cached value.
  const viaPlan = await client.run(lazy(id));
  assert.equal(viaPlan.value, value);
  assert.equal((await client.getLazyValue(id)).stats.loads, 1);

  const reset = await client.resetLazyValue(id);
  assert.equal(reset.state, 'LAZY_VALUE_STATE_EMPTY');
  assert.equal(reset.generation, declared.generation + 1);
  const again = await client.resolveLazyValue(`lazyValues/${id}`);
  assert.deepEqual([again.value, again.cacheHit, again.generation], [value, false, reset.generation]);
  ({ stats } = await client.getLazyValue(id));
  assert.equal(stats.loads, 2);

  await client.deleteLazyValue(id);
  await assert.rejects(client.resolveLazyValue(id), { code: 5, reason: 'LAZY_VALUE_NOT_FOUND' });
});
