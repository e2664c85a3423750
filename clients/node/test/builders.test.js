'use strict';

// The plan builders and names, without a server: what they build is the
// proto3 JSON of docs/tour.md and EXAMPLES.md (the five scenarios' plans,
// from testing/scenario_plans.js, compared with EXAMPLES.md's JSON).

const test = require('node:test');
const assert = require('node:assert/strict');
const weft = require('..');
const plans = require('../testing/scenario_plans');

const { call, parallel, race, offload, sequence, lazy } = weft;

const MAIL = 'http://mail.internal/send';

// EXAMPLES.md's requests, copied word for word from /work/shared/EXAMPLES.md.
const EXAMPLES = {
  dashboard: `{"plan": {"parallel": {"children": [
  {"id": "user",       "call": {"handler": "http", "args": {"url": "http://users.internal/users/42"}}},
  {"id": "recentPosts","call": {"handler": "http", "args": {"url": "http://posts.internal/users/42/posts"}}},
  {"id": "statistics", "call": {"handler": "http", "args": {"url": "http://stats.internal/users/42"}}}
]}}}`,
  failover: `{"plan": {"race": {"children": [
  {"id": "primary",  "call": {"handler": "http", "args": {"url": "http://search-a.internal/q?x=weft"}}},
  {"id": "backup",   "call": {"handler": "http", "args": {"url": "http://search-b.internal/q?x=weft"}}},
  {"id": "fallback", "timeout": "2s", "call": {"handler": "http", "args": {"url": "http://search-c.internal/q?x=weft"}}}
]}}}`,
  // "With `"hedgeDelay": "0.05s"` the backup starts only if ...": a field of the race.
  hedge: `"hedgeDelay": "0.05s"`,
  offload: `{"plan": {"parallel": {"children": [
  {"id": "digest", "offload": {"pool": "default", "child":
     {"call": {"handler": "hash", "args": {"data": "large payload", "rounds": 200000}}}}},
  {"id": "heartbeat", "call": {"handler": "sleep", "args": {"duration": "0.1s", "value": "on time"}}}
]}}}`,
  newsletter: `{"plan": {"parallel": {"join": "JOIN_ALL_SETTLED", "maxConcurrency": 10, "children": [
  {"id": "ada",   "retry": {"maxAttempts": 3, "initialBackoff": "0.2s"},
   "call": {"handler": "http", "args": {"method": "POST", "url": "http://mail.internal/send", "body": {"to": "ada@example.com"}}}},
  {"id": "grace", "retry": {"maxAttempts": 3, "initialBackoff": "0.2s"},
   "call": {"handler": "http", "args": {"method": "POST", "url": "http://mail.internal/send", "body": {"to": "grace@example.com"}}}}
]}}, "labels": {"job": "newsletter"}}`,
  analytics: `{"lazyValueId": "daily_stats", "lazyValue": {"ttl": "86400s", "refreshAfter": "3600s",
  "plan": {"offload": {"child": {"call": {"handler": "hash", "args": {"data": "stats", "rounds": 500000}}}}}}}`,
  // "every plan with `{"lazy": {"name": "lazyValues/daily_stats"}}`"
  analyticsInAPlan: `{"lazy": {"name": "lazyValues/daily_stats"}}`,
};

const example = (name) => JSON.parse(EXAMPLES[name]);

test('1. the dashboard plan is the JSON of EXAMPLES.md', () => {
  const built = plans.dashboard(
    'http://users.internal/users/42',
    'http://posts.internal/users/42/posts',
    'http://stats.internal/users/42',
  );
  assert.deepStrictEqual({ plan: built }, example('dashboard'));
});

test('2. the failover plan, and its hedged variant, are the JSON of EXAMPLES.md', () => {
  const urls = ['a', 'b', 'c'].map((server) => `http://search-${server}.internal/q?x=weft`);
  assert.deepStrictEqual({ plan: plans.search(...urls) }, example('failover'));
  const hedged = example('failover');
  Object.assign(hedged.plan.race, JSON.parse(`{${EXAMPLES.hedge}}`));
  assert.deepStrictEqual({ plan: plans.search(...urls, { hedgeDelay: 0.05 }) }, hedged);
});

test('3. the offload plan is the JSON of EXAMPLES.md', () => {
  assert.deepStrictEqual({ plan: plans.digestAndHeartbeat() }, example('offload'));
});

test('4. the newsletter task is the JSON of EXAMPLES.md', () => {
  const built = plans.newsletter([plans.send('ada', MAIL), plans.send('grace', MAIL)]);
  assert.deepStrictEqual({ plan: built, labels: plans.NEWSLETTER_LABELS }, example('newsletter'));
});

test('5. the analytics lazy value is the JSON of EXAMPLES.md', () => {
  const { ttl, refreshAfter } = plans.DAILY_STATS_OPTIONS;
  const built = {
    lazyValueId: weft.lazyValueName('daily_stats').slice('lazyValues/'.length),
    lazyValue: { ttl: weft.formatDuration(ttl), refreshAfter: weft.formatDuration(refreshAfter), plan: plans.dailyStats() },
  };
  assert.deepStrictEqual(built, example('analytics'));
  assert.deepStrictEqual(lazy('daily_stats'), example('analyticsInAPlan'));
});

test('durations become proto3 JSON strings, from seconds or strings', () => {
  const plan = race(
    [
      call('sleep', { duration: '0.2s' }, { id: 'primary', timeout: 2 }),
      call('sleep', { duration: '0.1s' }, { id: 'backup', timeout: '0.250s' }),
    ],
    { hedgeDelay: 0.05, mode: 'RACE_MODE_FIRST_COMPLETE' },
  );
  assert.deepEqual(plan, {
    race: {
      children: [
        { id: 'primary', timeout: '2s', call: { handler: 'sleep', args: { duration: '0.2s' } } },
        { id: 'backup', timeout: '0.25s', call: { handler: 'sleep', args: { duration: '0.1s' } } },
      ],
      mode: 'RACE_MODE_FIRST_COMPLETE',
      hedgeDelay: '0.05s',
    },
  });
  assert.equal(weft.formatDuration(1.5), '1.5s');
  assert.equal(weft.formatDuration(86400), '86400s');
  assert.equal(weft.formatDuration(0.9999999999), '1s');
  assert.equal(weft.formatDuration('-0.000000001s'), '-0.000000001s');
  assert.throws(() => call('value', {}, { timeout: '2 s' }), {
    name: 'TypeError',
    message: 'timeout: expected seconds as a number or a string such as "0.2s", got "2 s"',
  });
});

test('retry policies: durations as strings, the rest as given', () => {
  const retry = { maxAttempts: 3, initialBackoff: 0.2, maxBackoff: '2s', retryableCodes: ['UNAVAILABLE'] };
  assert.deepEqual(call('value', {}, { retry }), {
    retry: { maxAttempts: 3, initialBackoff: '0.2s', maxBackoff: '2s', retryableCodes: ['UNAVAILABLE'] },
    call: { handler: 'value', args: {} },
  });
});

test('offload, sequence and lazy nodes', () => {
  const digest = call('hash', { data: 'large payload', rounds: 200000 });
  assert.deepEqual(offload(digest, { pool: 'default', id: 'digest' }), {
    id: 'digest',
    offload: { pool: 'default', child: { call: { handler: 'hash', args: { data: 'large payload', rounds: 200000 } } } },
  });
  assert.deepEqual(offload(digest), { offload: { child: digest } });
  assert.deepEqual(sequence([digest, lazy('daily_stats')]), {
    sequence: { children: [digest, { lazy: { name: 'lazyValues/daily_stats' } }] },
  });
  assert.deepEqual(lazy('lazyValues/daily_stats', { id: 'stats' }), {
    id: 'stats',
    lazy: { name: 'lazyValues/daily_stats' },
  });
  assert.deepEqual(call('value'), { call: { handler: 'value' } });
});

test('data flow: ref, format and literal write their JSON forms; deadline is a duration', () => {
  const plan = sequence([
    call('http', { url: 'http://api/users/42' }, { id: 'user' }),
    call('value', {
      value: {
        url: weft.format('http://api/users/{user.body.id}/posts'),
        name: weft.ref('user.body.name'),
        kept: weft.literal({ $ref: 'not.read' }),
      },
    }, { deadline: 2.5 }),
  ]);
  assert.deepEqual(plan.sequence.children[1], {
    deadline: '2.5s',
    call: {
      handler: 'value',
      args: {
        value: {
          url: { $format: 'http://api/users/{user.body.id}/posts' },
          name: { $ref: 'user.body.name' },
          kept: { $literal: { $ref: 'not.read' } },
        },
      },
    },
  });
});

test('map: items, child and the join options, as in the JSON', () => {
  const send = weft.map(weft.ref('subscribers.body'), call('value', { value: weft.ref('$item.email') }), {
    as: 'subscriber', join: 'JOIN_ALL_SETTLED', maxConcurrency: 10, id: 'send',
  });
  assert.deepEqual(send, {
    id: 'send',
    map: {
      items: { $ref: 'subscribers.body' },
      child: { call: { handler: 'value', args: { value: { $ref: '$item.email' } } } },
      join: 'JOIN_ALL_SETTLED',
      maxConcurrency: 10,
      as: 'subscriber',
    },
  });
});

test('names take the resource name or the bare id', () => {
  assert.equal(weft.taskName('0123abcd'), 'tasks/0123abcd');
  assert.equal(weft.taskName('tasks/0123abcd'), 'tasks/0123abcd');
  assert.equal(weft.lazyValueName('daily_stats'), 'lazyValues/daily_stats');
  assert.equal(weft.lazyValueName('lazyValues/daily_stats'), 'lazyValues/daily_stats');
  assert.throws(() => weft.taskName(''), TypeError);
});
