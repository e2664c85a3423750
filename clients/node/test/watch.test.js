'use strict';

// watchTask: snapshots until the end, resumed after a dropped connection.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const weft = require('..');
const { useServers } = require('../testing/servers');

const { call, sequence } = weft;
const servers = useServers();

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

test('a watch resumes after its connection drops, missing and repeating nothing', async () => {
  const proxy = await startProxy(servers.address);
  const client = new weft.Client(proxy.address);
  try {
    // Three steps of a second each: the drops come while the task sleeps.
    const task = await servers.client.createTask(
      sequence([1, 2, 3].map((value) => call('sleep', { duration: '1s', value }))),
    );
    const snapshots = [];
    for await (const snapshot of client.watchTask(task.name)) {
      snapshots.push(snapshot);
      if (snapshots.length <= 2) proxy.drop();
    }
    assert.equal(proxy.connections, 3, 'the watch did not reconnect after each drop');
    const steps = snapshots.map(step);
    assert.equal(new Set(steps).size, steps.length, `a snapshot came twice:\n${steps.join('\n')}`);
    assert.deepEqual([...new Set(snapshots.map((s) => s.progress.leavesDone))], [0, 1, 2, 3], steps.join('\n'));
    const last = snapshots.at(-1);
    assert.equal(last.state, 'TASK_STATE_SUCCEEDED');
    assert.deepEqual(last.outcome.value, [1, 2, 3]);
  } finally {
    client.close();
    await proxy.close();
  }
});

test('watching an ended task yields its last snapshot alone', async () => {
  const task = await servers.client.createTask(call('value', { value: { sent: 3 } }));
  await servers.client.waitTask(task.name);
  const snapshots = [];
  for await (const snapshot of servers.client.watchTask(task.name, { detail: 'root' })) snapshots.push(snapshot);
  assert.deepEqual(snapshots.map((s) => [s.state, s.outcome.value]), [['TASK_STATE_SUCCEEDED', { sent: 3 }]]);
});

test('watching a task that does not exist fails at once, without resuming', async () => {
  const name = `tasks/${'f'.repeat(32)}`;
  const watch = servers.client.watchTask(name);
  await assert.rejects(watch.next(), { name: 'WeftError', codeName: 'NOT_FOUND', reason: 'TASK_NOT_FOUND' });
});
