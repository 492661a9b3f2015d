-- A DaemonSet restarts.
return {
  restart = {iconClass = "fa fa-fw fa-redo"},
}
