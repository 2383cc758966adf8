/**
 * The seed's API allows both `new HyperEmitter(db, schema)` and
 * `HyperEmitter(db, schema)`. ES classes throw when called without `new`,
 * so the exported value is the class behind a Proxy whose call trap
 * constructs; `instanceof`, statics and subclassing still work.
 */
export function callable<C extends new (...args: any[]) => any>(cls: C): C & ((...args: ConstructorParameters<C>) => InstanceType<C>) {
  return new Proxy(cls, {
    apply(target, _thisArg, args) {
      return new target(...args)
    },
  }) as C & ((...args: ConstructorParameters<C>) => InstanceType<C>)
}
