-- `kubectl rollout resume`.
obj.spec.paused = nil
return obj
