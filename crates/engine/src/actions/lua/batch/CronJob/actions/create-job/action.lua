-- `kubectl create job --from=cronjob/NAME`: a Job from the CronJob's template, owned by
-- the CronJob, so it is shown under it and removed with it.
local os = require("os")
local template = obj.spec.jobTemplate
local job = {
  apiVersion = "batch/v1",
  kind = "Job",
  metadata = {
    name = obj.metadata.name .. "-" .. os.date("!%Y%m%d%H%M%S"),
    namespace = obj.metadata.namespace,
    labels = {},
    annotations = {["cronjob.kubernetes.io/instantiate"] = "manual"},
    ownerReferences = {{
      apiVersion = obj.apiVersion,
      kind = obj.kind,
      name = obj.metadata.name,
      uid = obj.metadata.uid,
      blockOwnerDeletion = true,
      controller = true,
    }},
  },
  spec = template.spec,
}
if template.metadata ~= nil then
  for k, v in pairs(template.metadata.labels or {}) do
    job.metadata.labels[k] = v
  end
  for k, v in pairs(template.metadata.annotations or {}) do
    job.metadata.annotations[k] = v
  end
end
return {{operation = "create", resource = job}}
