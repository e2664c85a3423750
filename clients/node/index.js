'use strict';

/**
 * The Node.js client of weft.
 *
 *     const weft = require('weft-client');  // clients/node
 *     const client = new weft.Client('127.0.0.1:50051', {timeout: 30});
 *     const outcome = await client.run(weft.parallel([
 *       weft.call('sleep', {duration: '0.3s', value: {name: 'Ada'}}, {id: 'user'}),
 *       weft.call('value', {value: {followers: 42}}, {id: 'stats'}),
 *     ]));
 *     outcome.value;  // {user: {name: 'Ada'}, stats: {followers: 42}}
 *
 * Every method returns a promise (watchTask an async iterator). What they
 * take and answer are plain objects with camelCase fields, as in proto3
 * JSON: values as plain JS values (42, {followers: 42}, null), durations as
 * seconds, times as Dates, enums by name ("TASK_STATE_SUCCEEDED"). A call
 * weftd refuses rejects with a {@link WeftError}; a request that cannot be
 * encoded (an unknown field, a value that is not JSON) with a TypeError.
 *
 * @module weft
 */

const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const { protos } = require('./lib/protos');
const values = require('./lib/values');
const plan = require('./lib/plan');
const { WeftError } = require('./lib/errors');
const { TaskWatch } = require('./lib/watch');

const { taskName, lazyValueName } = plan;

const TERMINAL_TASK_STATES = new Set([
  'TASK_STATE_SUCCEEDED',
  'TASK_STATE_FAILED',
  'TASK_STATE_CANCELLED',
  'TASK_STATE_TIMED_OUT',
]);

/** How long WaitTask waits when its request says nothing (orchestrator.proto). */
const WAIT_TASK_DEFAULT = 30;

/**
 * Whether a task has ended.
 *
 * @param {{state: string}} task
 * @returns {boolean}
 */
function isTerminal(task) {
  return TERMINAL_TASK_STATES.has(task.state);
}

// "root" (or "OUTCOME_DETAIL_ROOT") -> "OUTCOME_DETAIL_ROOT"; the request's
// conversion rejects what names no value of the enum.
function enumName(prefix, short) {
  if (short === undefined) return undefined;
  const name = String(short).toUpperCase();
  return name.startsWith(prefix) ? name : prefix + name;
}

let services = null;

// A PEM file's bytes; a TypeError naming the option when it cannot be read.
function readPem(path, what) {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    throw new TypeError(`${what} ${path}: ${e.message}`);
  }
}

// An interceptor adding "authorization: Bearer TOKEN" to every call (also
// over plaintext, where call credentials are not sent).
function bearer(token) {
  return (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set('authorization', `Bearer ${token}`);
      next(metadata, listener);
    },
  });
}

// The stubs' constructors and the services' reflection, made once.
function loadServices() {
  if (!services) {
    const { root, packageDefinition } = protos();
    const loaded = grpc.loadPackageDefinition(packageDefinition);
    services = {
      orchestrator: { Stub: loaded.weft.v1.Orchestrator, service: root.lookupService('weft.v1.Orchestrator') },
      health: { Stub: loaded.grpc.health.v1.Health, service: root.lookupService('grpc.health.v1.Health') },
    };
  }
  return services;
}

/**
 * A connection to weftd.
 */
class Client {
  #orchestrator;
  #health;
  #timeout;
  // The calls in flight (unary calls and watches being iterated), each with
  // a cancel(reason): what close() cancels.
  #inFlight = new Set();
  #closed = false;

  /**
   * @param {string} address weftd's "host:port" (or "unix:PATH").
   * @param {object} [options]
   * @param {number} [options.timeout] Each call's deadline in seconds, unless
   *     the call says; none by default. WaitTask's is added to its wait;
   *     watchTask has none.
   * @param {import('@grpc/grpc-js').ChannelCredentials} [options.credentials]
   *     Plaintext by default, or TLS from the files below.
   * @param {string} [options.tlsCa] PEM file of the CA that signed weftd's
   *     certificate: TLS.
   * @param {string} [options.tlsCert] With tlsKey, this client's PEM
   *     certificate and key, for mutual TLS.
   * @param {string} [options.tlsKey]
   * @param {string} [options.token] Sent on every call as
   *     "authorization: Bearer TOKEN" (weftd's --auth_tokens).
   * @param {object} [options.channelOptions] grpc-js channel options.
   */
  constructor(address, { timeout, credentials, tlsCa, tlsCert, tlsKey, token, channelOptions } = {}) {
    const { orchestrator, health } = loadServices();
    if ((tlsCert === undefined) !== (tlsKey === undefined)) {
      throw new TypeError('tlsCert and tlsKey go together: give both or neither');
    }
    if (tlsCa === undefined && tlsCert !== undefined) {
      throw new TypeError('a client certificate (tlsCert) needs TLS: give tlsCa too');
    }
    if (credentials === undefined) {
      credentials = tlsCa === undefined
        ? grpc.credentials.createInsecure()
        : grpc.credentials.createSsl(readPem(tlsCa, 'tlsCa'),
          tlsKey === undefined ? null : readPem(tlsKey, 'tlsKey'),
          tlsCert === undefined ? null : readPem(tlsCert, 'tlsCert'));
    }
    const interceptors = token === undefined ? [] : [bearer(token)];
    const clientOptions = { ...channelOptions, interceptors: [...interceptors, ...(channelOptions?.interceptors ?? [])] };
    const stub = new orchestrator.Stub(address, credentials, clientOptions);
    this.#orchestrator = { stub, service: orchestrator.service };
    this.#health = {
      stub: new health.Stub(address, credentials, { channelOverride: stub.getChannel(), interceptors: clientOptions.interceptors }),
      service: health.service,
    };
    this.#timeout = timeout;
  }

  // A unary call: the request converted, the answer converted back, a
  // failure as a WeftError.
  #unary({ stub, service }, method, request, timeout = this.#timeout) {
    const rpc = service.methods[method];
    return new Promise((resolve, reject) => {
      const message = values.toMessage(rpc.resolvedRequestType, request);
      if (this.#closed) throw closedError();
      const options = timeout === undefined ? {} : { deadline: Date.now() + timeout * 1000 };
      let call = null;
      let settled = false;
      let cancelledBy = null; // close()'s error, once it cancelled the call
      const inFlight = {
        cancel: (reason) => {
          cancelledBy = reason;
          call.cancel();
        },
      };
      call = stub[method](message, options, (err, response) => {
        settled = true;
        this.#inFlight.delete(inFlight);
        // Whatever goes wrong converting the answer rejects: nothing may
        // escape grpc-js's callback and leave the promise unsettled.
        try {
          if (err) reject(cancelledBy ?? WeftError.fromServiceError(err));
          else resolve(values.fromMessage(rpc.resolvedResponseType, response));
        } catch (conversionError) {
          reject(conversionError);
        }
      });
      if (!settled) this.#inFlight.add(inFlight);
    });
  }

  #call(method, request, timeout) {
    return this.#unary(this.#orchestrator, method, request, timeout);
  }

  // Every item of a paged list.
  async #all(method, request, field) {
    const items = [];
    let pageToken;
    do {
      const page = await this.#call(method, { ...request, pageToken });
      items.push(...page[field]);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return items;
  }

  /**
   * Runs a plan and waits for its outcome. A plan that ran and failed is an
   * outcome (its `state` and `error`), not a rejection.
   *
   * @param {object} planNode A plan (see the builders), in its JSON form.
   * @param {object} [options]
   * @param {'full'|'root'} [options.detail] "root": the root's outcome alone.
   *     Either way the outcome's `value` is there, built from the
   *     children's when weftd sent them.
   * @param {number} [options.timeout] The deadline, in seconds; it bounds
   *     the whole plan.
   * @returns {Promise<object>} The NodeOutcome.
   */
  async run(planNode, { detail, timeout } = {}) {
    const response = await this.#call('Run', { plan: planNode, detail: enumName('OUTCOME_DETAIL_', detail) }, timeout);
    return response.outcome;
  }

  /**
   * The handlers `call` nodes can name, with their arguments.
   *
   * @returns {Promise<object[]>}
   */
  async listHandlers() {
    return (await this.#call('ListHandlers', {})).handlers;
  }

  /**
   * Starts a plan as a background task.
   *
   * @param {object} planNode
   * @param {object} [options]
   * @param {{[key: string]: string}} [options.labels]
   * @param {string} [options.requestId] Creating again with it and the same
   *     plan returns the same task.
   * @param {'full'|'root'} [options.detail] How much of the outcome the task keeps.
   * @returns {Promise<object>} The Task, at once.
   */
  createTask(planNode, { labels, requestId, detail } = {}) {
    return this.#call('CreateTask', { plan: planNode, labels, requestId, detail: enumName('OUTCOME_DETAIL_', detail) });
  }

  /**
   * A task as it stands.
   *
   * @param {string} name "tasks/ID" or "ID".
   * @param {object} [options]
   * @param {'full'|'root'} [options.detail]
   * @param {'basic'|'full'} [options.view] "full" adds the plan, "basic"
   *     leaves out the outcome.
   * @param {string} [options.node] The path of one node, e.g. "fetch/children[2]".
   * @returns {Promise<object>}
   */
  getTask(name, { detail, view, node } = {}) {
    return this.#call('GetTask', {
      name: taskName(name),
      detail: enumName('OUTCOME_DETAIL_', detail),
      view: enumName('TASK_VIEW_', view),
      node,
    });
  }

  /**
   * The task once it has ended, or as it stands when `timeout` passes.
   *
   * @param {string} name
   * @param {object} [options]
   * @param {number|string} [options.timeout] How long to wait; 30 s by default.
   * @param {'full'|'root'} [options.detail]
   * @returns {Promise<object>}
   */
  waitTask(name, { timeout, detail } = {}) {
    const wait = values.parseDuration(timeout ?? WAIT_TASK_DEFAULT, 'timeout');
    return this.#call(
      'WaitTask',
      { name: taskName(name), timeout, detail: enumName('OUTCOME_DETAIL_', detail) },
      this.#timeout === undefined ? undefined : wait.seconds + wait.nanos / 1e9 + this.#timeout,
    );
  }

  /**
   * Cancels a queued or running task; an ended one is returned unchanged.
   *
   * @param {string} name
   * @returns {Promise<object>}
   */
  cancelTask(name) {
    return this.#call('CancelTask', { name: taskName(name) });
  }

  /**
   * Forgets an ended task.
   *
   * @param {string} name
   * @returns {Promise<void>}
   */
  async deleteTask(name) {
    await this.#call('DeleteTask', { name: taskName(name) });
  }

  /**
   * Every task (all pages), newest first.
   *
   * @param {object} [options]
   * @param {{[key: string]: string}} [options.labels] Carrying all of these.
   * @param {string[]} [options.states] In any of these ("TASK_STATE_RUNNING").
   * @param {'basic'|'full'} [options.view] "full" adds plans and outcomes.
   * @param {'full'|'root'} [options.detail] With view "full".
   * @param {number} [options.pageSize] Tasks per call (1 to 1000).
   * @returns {Promise<object[]>}
   */
  listTasks({ labels, states, view, detail, pageSize } = {}) {
    return this.#all(
      'ListTasks',
      { labels, states, view: enumName('TASK_VIEW_', view), detail: enumName('OUTCOME_DETAIL_', detail), pageSize },
      'tasks',
    );
  }

  /**
   * Follows a task: yields it as it stands, then at each change (state, or
   * progress at most ten times a second), and ends after it has ended. A
   * stream that breaks (UNAVAILABLE: a lost connection, a reset) or ends
   * before the task did is opened again from the last event seen, so
   * nothing is missed or repeated: up to 8 reconnections in a row without
   * an event between, waiting 0.1 s, then twice as long each time (at most
   * 2 s); the 9th break rejects with the last error (UNAVAILABLE).
   *
   * Stopping it cancels the stream at once, even while a `next()` waits for
   * an event: leaving the loop (or `return()`) makes that `next()` resolve
   * `{done: true}`; `signal` aborting rejects it with an Error named
   * "AbortError" (the signal's reason as its `cause`), `timeout` passing
   * with a WeftError DEADLINE_EXCEEDED, and the client's `close()` with a
   * WeftError CANCELLED.
   *
   * @param {string} name
   * @param {object} [options]
   * @param {'full'|'root'} [options.detail] Of the last snapshot's outcome.
   * @param {AbortSignal} [options.signal] Stops the watch when it aborts.
   * @param {number|string} [options.timeout] Bounds the whole watch,
   *     reconnections included, from its first `next()`: seconds, or a
   *     string such as "30s". None by default (the client's `timeout` is
   *     not applied to watches).
   * @returns {AsyncIterableIterator<object>} Task snapshots. Bad arguments
   *     throw a TypeError at once.
   */
  watchTask(name, { detail, signal, timeout } = {}) {
    const rpc = this.#orchestrator.service.methods.WatchTask;
    const request = { name: taskName(name), detail: enumName('OUTCOME_DETAIL_', detail) };
    values.toMessage(rpc.resolvedRequestType, request); // a TypeError now rather than at the first next()
    return new TaskWatch(request.name, {
      open: (afterSequence) => {
        if (this.#closed) throw closedError();
        return this.#orchestrator.stub.WatchTask(values.toMessage(rpc.resolvedRequestType, { ...request, afterSequence }));
      },
      convert: (event) => values.fromMessage(rpc.resolvedResponseType, event),
      isTerminal,
      signal,
      timeout,
      inFlight: this.#inFlight,
    });
  }

  /**
   * Declares a lazy value (the same definition again is a no-op).
   *
   * @param {string} id "lazyValues/ID" or "ID": 1 to 63 of a-z, 0-9, "_", "-".
   * @param {object} planNode Computes the value.
   * @param {object} [options]
   * @param {number|string} [options.ttl] How long a value is served; until reset by default.
   * @param {number|string} [options.refreshAfter] Older than this, a resolve
   *     answers at once and refreshes it in the background.
   * @param {number|string} [options.cacheFailuresFor] How long a failure is served.
   * @returns {Promise<object>} The LazyValue.
   */
  createLazyValue(id, planNode, { ttl, refreshAfter, cacheFailuresFor } = {}) {
    return this.#call('CreateLazyValue', {
      lazyValueId: lazyValueName(id).slice('lazyValues/'.length),
      lazyValue: { plan: planNode, ttl, refreshAfter, cacheFailuresFor },
    });
  }

  /**
   * A lazy value's value: cached, or from the one computation every caller
   * shares. A failed computation rejects with its code and reason
   * LAZY_COMPUTATION_FAILED.
   *
   * @param {string} name "lazyValues/ID" or "ID".
   * @param {{timeout?: number}} [options]
   * @returns {Promise<{value: *, cacheHit: boolean, generation: number, computeTime: Date}>}
   */
  resolveLazyValue(name, { timeout } = {}) {
    return this.#call('ResolveLazyValue', { name: lazyValueName(name) }, timeout);
  }

  /**
   * A lazy value's definition, cache state and counters (`stats`); never computes.
   *
   * @param {string} name
   * @returns {Promise<object>}
   */
  getLazyValue(name) {
    return this.#call('GetLazyValue', { name: lazyValueName(name) });
  }

  /**
   * Forgets the cached value and moves the generation on.
   *
   * @param {string} name
   * @returns {Promise<object>}
   */
  resetLazyValue(name) {
    return this.#call('ResetLazyValue', { name: lazyValueName(name) });
  }

  /**
   * Every lazy value (all pages), by name.
   *
   * @returns {Promise<object[]>}
   */
  listLazyValues() {
    return this.#all('ListLazyValues', {}, 'lazyValues');
  }

  /**
   * Forgets a lazy value; its resolvers waiting get ABORTED.
   *
   * @param {string} name
   * @returns {Promise<void>}
   */
  async deleteLazyValue(name) {
    await this.#call('DeleteLazyValue', { name: lazyValueName(name) });
  }

  /**
   * weftd's version, uptime (seconds), tasks by state, pools, lazy values'
   * counters, memory budgets and limits.
   *
   * @returns {Promise<object>}
   */
  serverInfo() {
    return this.#call('GetServerInfo', {});
  }

  /**
   * grpc.health.v1's answer for a service ("" is weftd as a whole).
   *
   * @param {string} [service]
   * @returns {Promise<string>} "SERVING", "NOT_SERVING", ...
   */
  async health(service = '') {
    return (await this.#unary(this.#health, 'Check', { service })).status;
  }

  /**
   * Closes the connection. Calls in flight are cancelled: their promises,
   * and the `next()` of a watch waiting for an event, reject with a
   * WeftError CANCELLED; calls made afterwards reject with it too.
   */
  close() {
    this.#closed = true;
    const reason = closedError();
    for (const call of [...this.#inFlight]) call.cancel(reason);
    this.#inFlight.clear();
    this.#orchestrator.stub.close();
  }
}

function closedError() {
  return new WeftError({ code: grpc.status.CANCELLED, details: 'the client is closed' });
}

module.exports = {
  Client,
  WeftError,
  isTerminal,
  call: plan.call,
  parallel: plan.parallel,
  race: plan.race,
  offload: plan.offload,
  sequence: plan.sequence,
  lazy: plan.lazy,
  map: plan.map,
  ref: plan.ref,
  format: plan.format,
  literal: plan.literal,
  taskName,
  lazyValueName,
  toValue: values.toValue,
  fromValue: values.fromValue,
  toStruct: values.toStruct,
  fromStruct: values.fromStruct,
  assembleValue: values.assembleValue,
  formatDuration: values.formatDuration,
};
