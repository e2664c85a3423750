'use strict';

/**
 * A stand-in for weftd inside the test's process: a grpc-js server of
 * weft.v1.Orchestrator whose methods the test writes, for what weftd does
 * not do on demand: a watch stream that ends before its task, or that never
 * sends another event; an error with a malformed details trailer. Methods
 * the test leaves out answer UNIMPLEMENTED.
 */

const grpc = require('@grpc/grpc-js');
const { protos } = require('../lib/protos');

/**
 * Starts the server on 127.0.0.1 and a port of its own.
 *
 * @param {object} methods grpc-js handlers by method name, e.g.
 *     `{WatchTask(call) {...}}`; requests come decoded as the client's
 *     answers are (camelCase fields, numbers, enums by name).
 * @returns {Promise<{address: string, close: () => void}>} close() ends
 *     every call still open.
 */
async function startFakeWeftd(methods) {
  const { service } = grpc.loadPackageDefinition(protos().packageDefinition).weft.v1.Orchestrator;
  const server = new grpc.Server();
  server.addService(service, methods);
  const port = await new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err) reject(err);
      else resolve(bound);
    });
  });
  return { address: `127.0.0.1:${port}`, close: () => server.forceShutdown() };
}

/**
 * A WatchTask event of a task at `state` ("TASK_STATE_RUNNING").
 *
 * @param {number} sequence
 * @param {string} name
 * @param {string} state
 */
function taskEvent(sequence, name, state) {
  return { sequence, task: { name, state } };
}

module.exports = { startFakeWeftd, taskEvent };
