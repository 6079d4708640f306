import type { Denial } from '../../src/core/denial.js';

/** Parent → child. */
export interface TaskMessage {
  readonly type: 'task';
  readonly id: number;
  readonly op: string;
  readonly payload: unknown;
}

/** What a child measured about one task; reported with every result. */
export interface TaskMetrics {
  readonly cpu_ms: number;
  readonly heap_bytes: number;
}

/** Child → parent. */
export type ChildMessage =
  | { readonly type: 'ready'; readonly pid: number }
  | { readonly type: 'progress'; readonly id: number; readonly progress: number; readonly total?: number; readonly message?: string }
  | { readonly type: 'result'; readonly id: number; readonly ok: true; readonly value: unknown; readonly metrics: TaskMetrics }
  | { readonly type: 'result'; readonly id: number; readonly ok: false; readonly denial: Denial; readonly metrics: TaskMetrics }
  | {
      readonly type: 'result';
      readonly id: number;
      readonly ok: false;
      readonly error: { readonly message: string; readonly code?: string };
      readonly metrics: TaskMetrics;
    };
