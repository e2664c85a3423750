'use strict';

// watchTask: snapshots until the end, resumed after a dropped connection or
// a stream that ends early, and stopped at once by return(), its signal,
// its timeout or the client's close().

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { setTimeout: sleep } = require('node:timers/promises');
const weft = require('..');
const { useServers, within } = require('../testing/servers');
const { startFakeWeftd, taskEvent } = require('../testing/fake_weftd');

const { call, sequence, WeftError } = weft;
const servers = useServers();

/** Each watch's bound, in seconds: a watch that hangs fails its test. */
const WATCH_TIMEOUT = 60;

/** How long stopping a watch may take, in ms: it is meant to be at once. */
const PROMPTLY_MS = 2000;

/**
 * A TCP proxy to `target` (host:port) whose connections the test can cut:
 * drop() resets every connection open, as a lost network would.
 */
async function startProxy(target) {
  const separator = target.lastIndexOf(':');
  const [host, port] = [target.slice(0, separator), Number(target.slice(separator + 1))];
  const sockets = new Set();
  const track = (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {}); // the other end's reset, or our own drop()
  };
  const proxy = { connections: 0 };
  const server = net.createServer((downstream) => {
    proxy.connections += 1;
    const upstream = net.connect(port, host);
    track(downstream);
    track(upstream);
    downstream.pipe(upstream).pipe(downstream);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.address = `127.0.0.1:${server.address().port}`;
  proxy.drop = () => sockets.forEach((socket) => socket.resetAndDestroy());
  proxy.close = () => {
    proxy.drop();
    return new Promise((resolve) => server.close(resolve));
  };
  return proxy;
}

function step(task) {
  const { leavesDone, leavesRunning } = task.progress;
  return `${task.state} done=${leavesDone} running=${leavesRunning}`;
}

test('a watch resumes after its connection drops, missing and repeating nothing', async (t) => {
  const proxy = await startProxy(servers.address);
  const client = new weft.Client(proxy.address, servers.credentials);
  t.after(() => {
    client.close();
    return proxy.close();
  });
  // Three steps of a second each: the drops come while the task sleeps.
  const task = await servers.client.createTask(
    sequence([1, 2, 3].map((value) => call('sleep', { duration: '1s', value }))),
  );
  servers.removeTaskAfter(t, task.name);
  const snapshots = [];
  for await (const snapshot of client.watchTask(task.name, { timeout: WATCH_TIMEOUT })) {
    snapshots.push(snapshot);
    if (snapshots.length <= 2) proxy.drop();
  }
  // One connection and one more after each drop, at least: grpc-js may
  // open others of its own.
  assert.ok(proxy.connections >= 3, `the watch did not reconnect after each drop (${proxy.connections} connections)`);
  const steps = snapshots.map(step);
  assert.equal(new Set(steps).size, steps.length, `a snapshot came twice:\n${steps.join('\n')}`);
  assert.deepEqual([...new Set(snapshots.map((s) => s.progress.leavesDone))], [0, 1, 2, 3], steps.join('\n'));
  const last = snapshots.at(-1);
  assert.equal(last.state, 'TASK_STATE_SUCCEEDED');
  assert.deepEqual(last.outcome.value, [1, 2, 3]);
});

test('watching an ended task yields its last snapshot alone', async (t) => {
  const task = await servers.client.createTask(call('value', { value: { sent: 3 } }));
  servers.removeTaskAfter(t, task.name);
  await servers.client.waitTask(task.name);
  const snapshots = [];
  for await (const snapshot of servers.client.watchTask(task.name, { detail: 'root', timeout: WATCH_TIMEOUT })) {
    snapshots.push(snapshot);
  }
  assert.deepEqual(snapshots.map((s) => [s.state, s.outcome.value]), [['TASK_STATE_SUCCEEDED', { sent: 3 }]]);
});

test('watching a task that does not exist fails at once, without resuming', async () => {
  const name = `tasks/${'f'.repeat(32)}`;
  const watch = servers.client.watchTask(name, { timeout: WATCH_TIMEOUT });
  await assert.rejects(watch.next(), { name: 'WeftError', codeName: 'NOT_FOUND', reason: 'TASK_NOT_FOUND' });
});

test('bad watch options are a TypeError at once', () => {
  assert.throws(() => servers.client.watchTask('tasks/0a', { timeout: '1 minute' }), {
    name: 'TypeError',
    message: /^timeout: expected seconds/,
  });
  assert.throws(() => servers.client.watchTask('tasks/0a', { signal: 'stop' }), {
    name: 'TypeError',
    message: 'signal: expected an AbortSignal, got stop',
  });
});

// --- against a stand-in weftd: streams that end early or never answer --------

const NAME = `tasks/${'0a'.repeat(16)}`;

/**
 * A stand-in weftd whose WatchTask sends `eventsFor(afterSequence, index)`
 * (index: the how-manieth call, from 0) and then ends the stream, or keeps
 * it open when the list ends with `'open'`. It records each call's
 * afterSequence (`requests`) and the calls the client cancelled
 * (`cancelled`, and `nextCancel`, a promise of the next one).
 */
async function fakeWatch(t, eventsFor) {
  const fake = { requests: [], cancelled: 0 };
  let cancelled;
  const expectCancel = () => {
    fake.nextCancel = new Promise((resolve) => {
      cancelled = resolve;
    });
  };
  expectCancel();
  const server = await startFakeWeftd({
    WatchTask(stream) {
      const index = fake.requests.push(stream.request.afterSequence) - 1;
      stream.on('cancelled', () => {
        fake.cancelled += 1;
        cancelled();
        expectCancel();
      });
      const events = eventsFor(stream.request.afterSequence, index);
      for (const event of events) if (event !== 'open') stream.write(event);
      if (events.at(-1) !== 'open') stream.end();
    },
    GetTask() {}, // never answers
  });
  fake.client = new weft.Client(server.address);
  t.after(() => {
    fake.client.close();
    server.close();
  });
  return fake;
}

// A stand-in whose watch sends the task running and then nothing more.
function runningForever(t) {
  return fakeWatch(t, () => [taskEvent(1, NAME, 'TASK_STATE_RUNNING'), 'open']);
}

test('a watch whose stream ends before its task is watched again from the last event', async (t) => {
  const fake = await fakeWatch(t, (afterSequence) =>
    afterSequence === 0
      ? [taskEvent(1, NAME, 'TASK_STATE_QUEUED'), taskEvent(2, NAME, 'TASK_STATE_RUNNING')]
      : [taskEvent(afterSequence + 1, NAME, 'TASK_STATE_SUCCEEDED')],
  );
  const states = [];
  for await (const task of fake.client.watchTask(NAME, { timeout: WATCH_TIMEOUT })) states.push(task.state);
  assert.deepEqual(states, ['TASK_STATE_QUEUED', 'TASK_STATE_RUNNING', 'TASK_STATE_SUCCEEDED']);
  assert.deepEqual(fake.requests, [0, 2]);
});

test('a watch whose streams keep ending without events gives up after 8 reconnections', async (t) => {
  const fake = await fakeWatch(t, (afterSequence, index) => (index === 0 ? [taskEvent(5, NAME, 'TASK_STATE_RUNNING')] : []));
  const states = [];
  const watching = (async () => {
    for await (const task of fake.client.watchTask(NAME, { timeout: WATCH_TIMEOUT })) states.push(task.state);
  })();
  await assert.rejects(watching, (err) => {
    assert.ok(err instanceof WeftError, `not a WeftError: ${err}`);
    assert.equal(err.codeName, 'UNAVAILABLE');
    assert.match(err.message, new RegExp(`the watch of ${NAME} ended before the task did \\(8 reconnections\\)`));
    return true;
  });
  assert.deepEqual(states, ['TASK_STATE_RUNNING']);
  // The first stream, then 8 more, each from the last event seen.
  assert.deepEqual(fake.requests, [0, 5, 5, 5, 5, 5, 5, 5, 5]);
});

test('return() while next() waits for an event cancels the stream at once', async (t) => {
  const fake = await runningForever(t);
  const watch = fake.client.watchTask(NAME);
  assert.equal((await watch.next()).value.state, 'TASK_STATE_RUNNING');
  const waiting = watch.next();
  await sleep(100); // the stream open, nothing coming
  assert.deepEqual(await within(watch.return(), PROMPTLY_MS, 'return()'), { done: true, value: undefined });
  assert.deepEqual(await within(waiting, PROMPTLY_MS, 'the next() waiting'), { done: true, value: undefined });
  await within(fake.nextCancel, PROMPTLY_MS, 'the server seeing the cancellation');
  assert.deepEqual(await watch.next(), { done: true, value: undefined });
  assert.equal(fake.requests.length, 1, 'the watch reconnected');
});

test('a watch\'s AbortSignal stops it: the next() waiting rejects with an AbortError', async (t) => {
  const fake = await runningForever(t);
  const controller = new AbortController();
  const watch = fake.client.watchTask(NAME, { signal: controller.signal });
  await watch.next();
  const waiting = watch.next();
  await sleep(100);
  const reason = new Error('the page was closed');
  controller.abort(reason);
  await within(
    assert.rejects(waiting, { name: 'AbortError', code: 'ABORT_ERR', message: `the watch of ${NAME} was aborted`, cause: reason }),
    PROMPTLY_MS,
    'the next() waiting',
  );
  await within(fake.nextCancel, PROMPTLY_MS, 'the server seeing the cancellation');
  assert.deepEqual(await watch.next(), { done: true, value: undefined });

  // A signal aborted already: no stream is opened.
  const opened = fake.requests.length;
  await assert.rejects(fake.client.watchTask(NAME, { signal: AbortSignal.abort() }).next(), { name: 'AbortError' });
  assert.equal(fake.requests.length, opened);
});

test('a watch\'s timeout bounds it whole: DEADLINE_EXCEEDED, the stream cancelled', async (t) => {
  const fake = await runningForever(t);
  const started = Date.now();
  const states = [];
  const watching = (async () => {
    for await (const task of fake.client.watchTask(NAME, { timeout: 0.5 })) states.push(task.state);
  })();
  await within(
    assert.rejects(watching, (err) => {
      assert.ok(err instanceof WeftError, `not a WeftError: ${err}`);
      assert.equal(err.codeName, 'DEADLINE_EXCEEDED');
      assert.equal(err.message, `DEADLINE_EXCEEDED: the watch of ${NAME} did not end within 0.5 s`);
      return true;
    }),
    10_000,
    'the watch with a 0.5 s timeout',
  );
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 450, `the watch ended after ${elapsed} ms`);
  assert.deepEqual(states, ['TASK_STATE_RUNNING']);
  await within(fake.nextCancel, PROMPTLY_MS, 'the server seeing the cancellation');
});

test('close() cancels the watches and calls in flight: they reject with CANCELLED', async (t) => {
  const fake = await runningForever(t);
  const watch = fake.client.watchTask(NAME);
  await watch.next();
  const waiting = watch.next();
  const unanswered = fake.client.getTask(NAME);
  await sleep(100);
  fake.client.close();
  const cancelled = { name: 'WeftError', codeName: 'CANCELLED', message: 'CANCELLED: the client is closed' };
  await within(assert.rejects(waiting, cancelled), PROMPTLY_MS, 'the watch\'s next() waiting');
  await within(assert.rejects(unanswered, cancelled), PROMPTLY_MS, 'the getTask in flight');
  await within(fake.nextCancel, PROMPTLY_MS, 'the server seeing the cancellation');
  await assert.rejects(fake.client.getTask(NAME), cancelled);
  await assert.rejects(fake.client.watchTask(NAME).next(), cancelled);
});
