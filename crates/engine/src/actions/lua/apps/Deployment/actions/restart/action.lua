-- `kubectl rollout restart`: a new pod template annotation makes the controller replace
-- every pod.
local os = require("os")
if obj.spec.template.metadata == nil then
  obj.spec.template.metadata = {}
end
if obj.spec.template.metadata.annotations == nil then
  obj.spec.template.metadata.annotations = {}
end
obj.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
