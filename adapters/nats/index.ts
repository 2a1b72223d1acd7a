export { NatsRuntime, type NatsRuntimeOptions } from './runtime.js';
export { encodeToken, names, filterSubject } from './subjects.js';
