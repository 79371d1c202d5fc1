# Reference values for tests/stats/test_effects.py: R metafor's random-effects meta-analysis with the
# Paule-Mandel estimator (the atlas's estimator) on fixed tables of effects and sampling variances, with
# normal-quantile intervals (test = "z") and the Knapp-Hartung small-sample adjustment, plain ("knha")
# and in its ad hoc form ("adhoc", never narrower than the unadjusted interval).
# Usage: Rscript metafor_pm.R <csv with columns table, yi, vi>  ->  one CSV line per table and test on stdout.
suppressPackageStartupMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
cat("table,test,estimate,se,ci_low,ci_high,tau2,i2,pi_low,pi_high\n")
for (t in unique(d$table)) {
  s <- d[d$table == t, ]
  for (test in c("z", "knha", "adhoc")) {
    fit <- rma(yi = s$yi, vi = s$vi, method = "PM", test = test, control = list(tol = 1e-12, maxiter = 10000))
    p <- predict(fit)
    cat(sprintf("%s,%s,%.12g,%.12g,%.12g,%.12g,%.12g,%.12g,%.12g,%.12g\n", t, test, fit$b[1], fit$se, fit$ci.lb,
                fit$ci.ub, fit$tau2, fit$I2, p$pi.lb, p$pi.ub))
  }
}
