export { createIngress, BODY_LIMIT, type IngressOptions } from './ingress.js';
export { toCloudEvents, BindingError } from './binding.js';
export { PromMetrics } from './metrics.js';
export type { IngressTarget, DeadLetterAdmin } from './types.js';
