'use strict';

// The five scenarios of EXAMPLES.md, end to end: weftd calling the HTTP
// fixture where the examples call other services.

const test = require('node:test');
const assert = require('node:assert/strict');
const weft = require('..');
const { useServers, unique } = require('../testing/servers');

const { call, parallel, race, offload, lazy, isTerminal } = weft;
const servers = useServers();

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
    parallel([
      call('http', { url: servers.url('/users/42?delay=1000') }, { id: 'user' }),
      call('http', { url: servers.url('/users/42/posts?delay=1000') }, { id: 'recentPosts' }),
      call('http', { url: servers.url('/stats/42?delay=1000') }, { id: 'statistics' }),
    ]),
    { detail: 'root' },
  );
  assert.equal(outcome.state, 'NODE_STATE_SUCCEEDED');
  const { user, recentPosts, statistics } = outcome.value;
  assert.deepEqual(Object.keys(outcome.value).sort(), ['recentPosts', 'statistics', 'user']);
  assert.equal(user.status, 200);
  assert.deepStrictEqual(user.body, { id: 42, name: 'Ada Lovelace' });
  assert.deepStrictEqual(recentPosts.body.map((post) => post.title), ['Notes on the Analytical Engine', 'On Bernoulli numbers']);
  assert.deepStrictEqual(statistics.body, { followers: 1843, posts: 2 });
  // Each source answers after 1 s: at once, not one after another.
  const elapsed = elapsedSeconds(outcome);
  assert.ok(elapsed >= 1 && elapsed < 2.5, `the dashboard took ${elapsed} s`);
});

test('dashboard: one source fails, the others are cancelled and the error names it', async () => {
  const outcome = await servers.client.run(
    parallel([
      call('http', { url: servers.url('/users/42?delay=10000') }, { id: 'user' }),
      call('http', { url: servers.url('/stats/42?status=500&delay=100') }, { id: 'statistics' }),
    ]),
  );
  assert.equal(outcome.state, 'NODE_STATE_FAILED');
  assert.equal(outcome.error.code, 'UNAVAILABLE');
  assert.match(outcome.error.message, /statistics/);
  assert.equal(child(outcome, 'statistics').error.reason, 'HTTP_STATUS');
  assert.equal(child(outcome, 'user').state, 'NODE_STATE_CANCELLED');
  assert.equal(child(outcome, 'user').error.reason, 'SIBLING_FAILED');
  assert.ok(elapsedSeconds(outcome) < 5, 'the slow source was not cancelled');
});

test('search with failover: the backup wins, the failing primary does not end the race', async () => {
  const search = (server, query) => servers.url(`/search?q=weft&server=${server}&${query}`);
  const outcome = await servers.client.run(
    race([
      call('http', { url: search('a', 'status=503') }, { id: 'primary' }),
      call('http', { url: search('b', 'delay=200') }, { id: 'backup' }),
      call('http', { url: search('c', 'hang=1') }, { id: 'fallback', timeout: 2 }),
    ]),
  );
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

test('search with hedging: a primary that answers in time leaves the backup unstarted', async () => {
  const outcome = await servers.client.run(
    race(
      [
        call('http', { url: servers.url('/search?server=a&delay=50') }, { id: 'primary' }),
        call('http', { url: servers.url('/search?server=b') }, { id: 'backup' }),
      ],
      { hedgeDelay: 5 },
    ),
  );
  assert.equal(outcome.winner, 'primary');
  assert.equal(outcome.value.body.server, 'a');
  const backup = child(outcome, 'backup');
  assert.equal(backup.state, 'NODE_STATE_SKIPPED');
  assert.equal(backup.attempts, 0);
});

test('CPU work off the event loop: the digest on a pool, the heartbeat on time', async () => {
  const outcome = await servers.client.run(
    parallel([
      offload(call('hash', { data: 'large payload', rounds: 200000 }), { id: 'digest', pool: 'default' }),
      call('sleep', { duration: '0.1s', value: 'on time' }, { id: 'heartbeat' }),
    ]),
  );
  assert.equal(outcome.state, 'NODE_STATE_SUCCEEDED');
  assert.deepStrictEqual(outcome.value, {
    digest: '028d0e241bcccac882601aa4f3919d6033b34cf2a0fbdbd29aae13e6c0af00e2',
    heartbeat: 'on time',
  });
  const digest = child(outcome, 'digest');
  assert.equal(digest.kind, 'NODE_KIND_OFFLOAD');
  assert.equal(digest.children[0].kind, 'NODE_KIND_CALL');
  const heartbeat = elapsedSeconds(child(outcome, 'heartbeat'));
  assert.ok(heartbeat >= 0.1 && heartbeat < 1, `the heartbeat took ${heartbeat} s`);
});

test('newsletter: a background task, every send kept, retried, found by label, watched to the end', async () => {
  const run = unique('newsletter');
  const send = (to, failFirst) =>
    call(
      'http',
      { method: 'POST', url: servers.url(`/send?fail_first=${failFirst}&key=${run}-${to}`), body: { to: `${to}@example.com` } },
      { id: to, retry: { maxAttempts: 3, initialBackoff: 0.2 } },
    );
  const created = await servers.client.createTask(
    parallel([send('ada', 2), send('grace', 5), send('alan', 0)], { join: 'JOIN_ALL_SETTLED', maxConcurrency: 10 }),
    { labels: { job: 'newsletter', run } },
  );
  assert.match(created.name, /^tasks\/[0-9a-f]{32}$/);
  assert.deepEqual(created.labels, { job: 'newsletter', run });

  const listed = await servers.client.listTasks({ labels: { run } });
  assert.deepEqual(listed.map((task) => task.name), [created.name]);

  const snapshots = [];
  for await (const task of servers.client.watchTask(created.name)) snapshots.push(task);
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
  await servers.client.deleteTask(created.name);
});

test('daily analytics: one computation for 200 callers at once, cached, reset', async () => {
  const { client } = servers;
  const id = unique('daily_stats');
  const digest = call('hash', { data: id, rounds: 500000 });
  const declared = await client.createLazyValue(id, offload(digest), { ttl: 86400, refreshAfter: 3600 });
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
