-- No new Jobs until resumed; running ones go on.
obj.spec.suspend = true
return obj
