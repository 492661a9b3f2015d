-- `kubectl scale`: the replica count from the `replicas` parameter.
local given = actionParams["replicas"]
local replicas = tonumber(given)
if replicas == nil or replicas < 0 or replicas % 1 ~= 0 then
  error("replicas: expected a whole number of at least 0, got " .. tostring(given), 0)
end
obj.spec.replicas = replicas
return obj
