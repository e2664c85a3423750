'use strict';

// Background tasks beyond the newsletter: waiting, cancelling, deleting,
// idempotent creation and every page of a list; and the server's own
// answers (health, info, handlers).

const test = require('node:test');
const assert = require('node:assert/strict');
const weft = require('..');
const { useServers, unique } = require('../testing/servers');

const { call, isTerminal } = weft;
const servers = useServers();

test('a running task: waited for in vain, cancelled, then deleted', async (t) => {
  const { client } = servers;
  const task = await client.createTask(call('sleep', { duration: '3600s' }), { labels: { run: unique('cancel') } });
  servers.removeTaskAfter(t, task.name); // cancelled and deleted even if an assertion fails first
  const waited = await client.waitTask(task.name, { timeout: 0.2 });
  assert.ok(!isTerminal(waited), `the task ended: ${waited.state}`);

  await assert.rejects(client.deleteTask(task.name), {
    codeName: 'FAILED_PRECONDITION',
    reason: 'TASK_NOT_FINISHED',
    resource: { type: 'weft.v1.Task', name: task.name },
  });

  await client.cancelTask(task.name.slice('tasks/'.length));
  const ended = await client.waitTask(task.name, { timeout: 30 });
  assert.equal(ended.state, 'TASK_STATE_CANCELLED');
  assert.equal(ended.outcome.error.reason, 'RUN_CANCELLED');
  assert.equal((await client.cancelTask(task.name)).state, 'TASK_STATE_CANCELLED');

  await client.deleteTask(task.name);
  await assert.rejects(client.getTask(task.name), { codeName: 'NOT_FOUND', reason: 'TASK_NOT_FOUND' });
});

test('a request id makes creation idempotent; reused with another plan, it names the first task', async (t) => {
  const requestId = unique('request');
  const first = await servers.client.createTask(call('value', { value: 1 }), { requestId });
  servers.removeTaskAfter(t, first.name);
  const again = await servers.client.createTask(call('value', { value: 1 }), { requestId });
  servers.removeTaskAfter(t, again.name);
  assert.equal(again.name, first.name);
  assert.equal(again.requestId, requestId);
  await assert.rejects(servers.client.createTask(call('value', { value: 2 }), { requestId }), {
    codeName: 'ALREADY_EXISTS',
    reason: 'REQUEST_ID_REUSED',
    resource: { type: 'weft.v1.Task', name: first.name },
  });
});

test('listTasks reads every page, newest first, filtered by label and state', async (t) => {
  const run = unique('list');
  const created = [];
  for (const value of [1, 2, 3]) {
    const task = await servers.client.createTask(call('value', { value }), { labels: { run, value: String(value) } });
    servers.removeTaskAfter(t, task.name);
    created.push(task);
  }
  for (const task of created) await servers.client.waitTask(task.name);
  const listed = await servers.client.listTasks({ labels: { run }, pageSize: 1 });
  assert.deepEqual(listed.map((task) => task.name), created.map((task) => task.name).reverse());
  assert.ok(listed.every((task) => task.outcome === null), 'the basic view carries outcomes');

  const full = await servers.client.listTasks({ labels: { run, value: '2' }, view: 'full', states: ['TASK_STATE_SUCCEEDED'] });
  assert.deepEqual(full.map((task) => [task.name, task.outcome.value]), [[created[1].name, 2]]);
  assert.deepEqual(full[0].plan.call, { handler: 'value', args: { value: 2 } });
  // A plan as an answer gives it can be run again.
  assert.equal((await servers.client.run(full[0].plan)).value, 2);
  assert.deepEqual(await servers.client.listTasks({ labels: { run }, states: ['TASK_STATE_RUNNING'] }), []);
});

test('health, server info and handlers', async () => {
  const { client } = servers;
  assert.equal(await client.health(), 'SERVING');
  const info = await client.serverInfo();
  assert.match(info.version, /^\d+\.\d+\.\d+/);
  assert.ok(typeof info.uptime === 'number' && info.uptime > 0);
  assert.ok(info.pools.some((pool) => pool.name === 'default' && pool.threads > 0));
  assert.equal(typeof info.limits.maxRunDuration, 'number');
  const handlers = await client.listHandlers();
  assert.deepEqual(handlers.map((h) => h.name).sort(), ['fail', 'hash', 'http', 'sleep', 'value']);
});
