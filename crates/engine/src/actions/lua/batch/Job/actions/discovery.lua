-- A Job is suspended (its pods stopped) or resumed.
local suspended = obj.spec ~= nil and obj.spec.suspend == true
local finished = false
for _, c in ipairs((obj.status or {}).conditions or {}) do
  if (c.type == "Complete" or c.type == "Failed") and c.status == "True" then
    finished = true
  end
end
return {
  suspend = {disabled = suspended or finished, iconClass = "fa fa-fw fa-pause"},
  resume = {disabled = not suspended, iconClass = "fa fa-fw fa-play"},
}
