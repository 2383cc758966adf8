/**
 * A minimal, runtime-agnostic event emitter with typed events. The core
 * cannot lean on node:events, and the npm `events` shim would drag Node's
 * semantics (an 'error' event with no listener throws) into browsers.
 */
export type EventHandlers = { [event: string]: (...args: any[]) => void }

export class TypedEmitter<Events extends EventHandlers> {
  private handlers = new Map<keyof Events, Set<Events[keyof Events]>>()

  /** Subscribe; returns `this` for chaining. */
  on<E extends keyof Events>(event: E, handler: Events[E]): this {
    let set = this.handlers.get(event)
    if (!set) this.handlers.set(event, (set = new Set()))
    set.add(handler)
    return this
  }

  /** Subscribe for one call only. */
  once<E extends keyof Events>(event: E, handler: Events[E]): this {
    const wrapper = ((...args: Parameters<Events[E]>) => {
      this.off(event, wrapper)
      handler(...args)
    }) as Events[E]
    return this.on(event, wrapper)
  }

  off<E extends keyof Events>(event: E, handler: Events[E]): this {
    this.handlers.get(event)?.delete(handler)
    return this
  }

  removeListener<E extends keyof Events>(event: E, handler: Events[E]): this {
    return this.off(event, handler)
  }

  listenerCount(event: keyof Events): number {
    return this.handlers.get(event)?.size ?? 0
  }

  /** Call every handler; a throwing handler does not stop the others. Returns whether any ran. */
  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): boolean {
    const set = this.handlers.get(event)
    if (!set || set.size === 0) return false
    for (const handler of [...set]) {
      try {
        handler(...args)
      } catch (err) {
        // A broken status listener must not break the emitter's own work.
        queueMicrotask(() => {
          throw err
        })
      }
    }
    return true
  }
}
