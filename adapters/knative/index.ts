export { KnativeFunction } from './server.js';
export { openStores, connectNats, MemoryCompletions, type NatsSettings, type StoreSettings } from './stores.js';
export { knativeManifest, type KnativeManifestOptions, type KubernetesResource } from './manifest.js';
export { toBinaryHttp } from './encode.js';
export { ATTEMPT_HEADER, type CompletionStore, type FunctionStores, type KnativeFunctionOptions } from './types.js';
export { HttpDispatcher, ingressApp, type HttpDispatcherOptions } from './dispatcher.js';
