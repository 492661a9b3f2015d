-- A CronJob is suspended or resumed, or runs once now.
local suspended = obj.spec ~= nil and obj.spec.suspend == true
return {
  ["create-job"] = {iconClass = "fa fa-fw fa-plus", displayName = "Create Job"},
  suspend = {disabled = suspended, iconClass = "fa fa-fw fa-pause"},
  resume = {disabled = not suspended, iconClass = "fa fa-fw fa-play"},
}
