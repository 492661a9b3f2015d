-- `kubectl rollout pause`: changes to the pod template wait until resumed.
obj.spec.paused = true
return obj
