'use strict';

// The plan builders and names, without a server: what they build is the
// proto3 JSON of docs/tour.md and EXAMPLES.md.

const test = require('node:test');
const assert = require('node:assert/strict');
const weft = require('..');

const { call, parallel, race, offload, sequence, lazy } = weft;

test('the dashboard plan is the JSON of the examples', () => {
  const plan = parallel([
    call('http', { url: 'http://users.internal/users/42' }, { id: 'user' }),
    call('http', { url: 'http://posts.internal/users/42/posts' }, { id: 'recentPosts' }),
    call('http', { url: 'http://stats.internal/users/42' }, { id: 'statistics' }),
  ]);
  assert.deepEqual(plan, {
    parallel: {
      children: [
        { id: 'user', call: { handler: 'http', args: { url: 'http://users.internal/users/42' } } },
        { id: 'recentPosts', call: { handler: 'http', args: { url: 'http://posts.internal/users/42/posts' } } },
        { id: 'statistics', call: { handler: 'http', args: { url: 'http://stats.internal/users/42' } } },
      ],
    },
  });
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

test('the newsletter: join, concurrency and retry policies', () => {
  const retry = { maxAttempts: 3, initialBackoff: 0.2, retryableCodes: ['UNAVAILABLE'] };
  const plan = parallel(
    [call('http', { method: 'POST', url: 'http://mail.internal/send', body: { to: 'ada@example.com' } }, { id: 'ada', retry })],
    { join: 'JOIN_ALL_SETTLED', maxConcurrency: 10 },
  );
  assert.deepEqual(plan, {
    parallel: {
      children: [
        {
          id: 'ada',
          retry: { maxAttempts: 3, initialBackoff: '0.2s', retryableCodes: ['UNAVAILABLE'] },
          call: { handler: 'http', args: { method: 'POST', url: 'http://mail.internal/send', body: { to: 'ada@example.com' } } },
        },
      ],
      join: 'JOIN_ALL_SETTLED',
      maxConcurrency: 10,
    },
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

test('names take the resource name or the bare id', () => {
  assert.equal(weft.taskName('0123abcd'), 'tasks/0123abcd');
  assert.equal(weft.taskName('tasks/0123abcd'), 'tasks/0123abcd');
  assert.equal(weft.lazyValueName('daily_stats'), 'lazyValues/daily_stats');
  assert.equal(weft.lazyValueName('lazyValues/daily_stats'), 'lazyValues/daily_stats');
  assert.throws(() => weft.taskName(''), TypeError);
});
