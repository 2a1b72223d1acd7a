export { LocalRuntime, type LocalRuntimeOptions } from './runtime.js';
