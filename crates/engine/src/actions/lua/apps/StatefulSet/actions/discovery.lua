-- A StatefulSet restarts and scales.
return {
  restart = {iconClass = "fa fa-fw fa-redo"},
  scale = {iconClass = "fa fa-fw fa-plus-circle", params = {{name = "replicas"}}},
}
