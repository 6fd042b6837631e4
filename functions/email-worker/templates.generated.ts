// Generated from templates/*.hbs by `npm run templates` (and `npm start`): edit those, not this file.
// @ts-nocheck: handlebars' precompiled code is untyped JavaScript; the export below carries the type.
import type { TemplateSpecification } from 'handlebars';

export const precompiledTemplates: Readonly<Record<string, TemplateSpecification>> = {
  "password-reset.html": {"compiler":[8,">= 4.3.0"],"main":function(container,depth0,helpers,partials,data) {
    var helper, alias1=container.strict, alias2=depth0 != null ? depth0 : (container.nullContext || {}), alias3="function", alias4=container.escapeExpression, lookupProperty = container.lookupProperty || function(parent, propertyName) {
        if (Object.prototype.hasOwnProperty.call(parent, propertyName)) {
          return parent[propertyName];
        }
        return undefined
    };

  return "<!doctype html>\n<html lang=\"en\">\n  <head>\n    <meta charset=\"utf-8\">\n    <title>"
    + alias4((((helper = lookupProperty(helpers,"subject") || alias1(depth0, "subject", {"start":{"line":5,"column":13},"end":{"line":5,"column":20}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"subject","hash":{},"data":data,"loc":{"start":{"line":5,"column":11},"end":{"line":5,"column":22}}}) : helper)))
    + "</title>\n  </head>\n  <body>\n    <p>Hello "
    + alias4((((helper = lookupProperty(helpers,"name") || alias1(depth0, "name", {"start":{"line":8,"column":15},"end":{"line":8,"column":19}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"name","hash":{},"data":data,"loc":{"start":{"line":8,"column":13},"end":{"line":8,"column":21}}}) : helper)))
    + ",</p>\n    <p>Someone asked to reset your password. If it was you, open this link within "
    + alias4((((helper = lookupProperty(helpers,"expiresIn") || alias1(depth0, "expiresIn", {"start":{"line":9,"column":84},"end":{"line":9,"column":93}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"expiresIn","hash":{},"data":data,"loc":{"start":{"line":9,"column":82},"end":{"line":9,"column":95}}}) : helper)))
    + ":</p>\n    <p><a href=\""
    + alias4((((helper = lookupProperty(helpers,"resetUrl") || alias1(depth0, "resetUrl", {"start":{"line":10,"column":18},"end":{"line":10,"column":26}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"resetUrl","hash":{},"data":data,"loc":{"start":{"line":10,"column":16},"end":{"line":10,"column":28}}}) : helper)))
    + "\">Reset your password</a></p>\n    <p>If the link does not open, copy this address into your browser:<br>"
    + alias4((((helper = lookupProperty(helpers,"resetUrl") || alias1(depth0, "resetUrl", {"start":{"line":11,"column":76},"end":{"line":11,"column":84}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"resetUrl","hash":{},"data":data,"loc":{"start":{"line":11,"column":74},"end":{"line":11,"column":86}}}) : helper)))
    + "</p>\n    <p>If it was not you, ignore this email: your password stays the same.</p>\n  </body>\n</html>\n";
},"useData":true},
  "password-reset.subject": {"compiler":[8,">= 4.3.0"],"main":function(container,depth0,helpers,partials,data) {
    return "Reset your password\n";
},"useData":true},
  "password-reset.txt": {"compiler":[8,">= 4.3.0"],"main":function(container,depth0,helpers,partials,data) {
    var stack1, helper, alias1=container.strict, alias2=depth0 != null ? depth0 : (container.nullContext || {}), alias3="function", lookupProperty = container.lookupProperty || function(parent, propertyName) {
        if (Object.prototype.hasOwnProperty.call(parent, propertyName)) {
          return parent[propertyName];
        }
        return undefined
    };

  return "Hello "
    + ((stack1 = (((helper = lookupProperty(helpers,"name") || alias1(depth0, "name", {"start":{"line":1,"column":8},"end":{"line":1,"column":12}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"name","hash":{},"data":data,"loc":{"start":{"line":1,"column":6},"end":{"line":1,"column":14}}}) : helper))) != null ? stack1 : "")
    + ",\n\nSomeone asked to reset your password. If it was you, open this link within "
    + ((stack1 = (((helper = lookupProperty(helpers,"expiresIn") || alias1(depth0, "expiresIn", {"start":{"line":3,"column":77},"end":{"line":3,"column":86}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"expiresIn","hash":{},"data":data,"loc":{"start":{"line":3,"column":75},"end":{"line":3,"column":88}}}) : helper))) != null ? stack1 : "")
    + ":\n\n"
    + ((stack1 = (((helper = lookupProperty(helpers,"resetUrl") || alias1(depth0, "resetUrl", {"start":{"line":5,"column":2},"end":{"line":5,"column":10}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"resetUrl","hash":{},"data":data,"loc":{"start":{"line":5,"column":0},"end":{"line":5,"column":12}}}) : helper))) != null ? stack1 : "")
    + "\n\nIf it was not you, ignore this email: your password stays the same.\n";
},"useData":true},
  "security-alert.html": {"compiler":[8,">= 4.3.0"],"main":function(container,depth0,helpers,partials,data) {
    var helper, alias1=container.strict, alias2=depth0 != null ? depth0 : (container.nullContext || {}), alias3="function", alias4=container.escapeExpression, lookupProperty = container.lookupProperty || function(parent, propertyName) {
        if (Object.prototype.hasOwnProperty.call(parent, propertyName)) {
          return parent[propertyName];
        }
        return undefined
    };

  return "<!doctype html>\n<html lang=\"en\">\n  <head>\n    <meta charset=\"utf-8\">\n    <title>"
    + alias4((((helper = lookupProperty(helpers,"subject") || alias1(depth0, "subject", {"start":{"line":5,"column":13},"end":{"line":5,"column":20}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"subject","hash":{},"data":data,"loc":{"start":{"line":5,"column":11},"end":{"line":5,"column":22}}}) : helper)))
    + "</title>\n  </head>\n  <body>\n    <p>Hello "
    + alias4((((helper = lookupProperty(helpers,"name") || alias1(depth0, "name", {"start":{"line":8,"column":15},"end":{"line":8,"column":19}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"name","hash":{},"data":data,"loc":{"start":{"line":8,"column":13},"end":{"line":8,"column":21}}}) : helper)))
    + ",</p>\n    <p>We noticed this on your account: <strong>"
    + alias4((((helper = lookupProperty(helpers,"event") || alias1(depth0, "event", {"start":{"line":9,"column":50},"end":{"line":9,"column":55}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"event","hash":{},"data":data,"loc":{"start":{"line":9,"column":48},"end":{"line":9,"column":57}}}) : helper)))
    + "</strong> at "
    + alias4((((helper = lookupProperty(helpers,"occurredAtUtc") || alias1(depth0, "occurredAtUtc", {"start":{"line":9,"column":72},"end":{"line":9,"column":85}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"occurredAtUtc","hash":{},"data":data,"loc":{"start":{"line":9,"column":70},"end":{"line":9,"column":87}}}) : helper)))
    + ".</p>\n    <p>"
    + alias4((((helper = lookupProperty(helpers,"details") || alias1(depth0, "details", {"start":{"line":10,"column":9},"end":{"line":10,"column":16}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"details","hash":{},"data":data,"loc":{"start":{"line":10,"column":7},"end":{"line":10,"column":18}}}) : helper)))
    + "</p>\n  </body>\n</html>\n";
},"useData":true},
  "security-alert.subject": {"compiler":[8,">= 4.3.0"],"main":function(container,depth0,helpers,partials,data) {
    var stack1, helper, lookupProperty = container.lookupProperty || function(parent, propertyName) {
        if (Object.prototype.hasOwnProperty.call(parent, propertyName)) {
          return parent[propertyName];
        }
        return undefined
    };

  return "Security alert: "
    + ((stack1 = (((helper = lookupProperty(helpers,"event") || container.strict(depth0, "event", {"start":{"line":1,"column":18},"end":{"line":1,"column":23}} ))),(typeof helper === "function" ? helper.call(depth0 != null ? depth0 : (container.nullContext || {}),{"name":"event","hash":{},"data":data,"loc":{"start":{"line":1,"column":16},"end":{"line":1,"column":25}}}) : helper))) != null ? stack1 : "")
    + "\n";
},"useData":true},
  "security-alert.txt": {"compiler":[8,">= 4.3.0"],"main":function(container,depth0,helpers,partials,data) {
    var stack1, helper, alias1=container.strict, alias2=depth0 != null ? depth0 : (container.nullContext || {}), alias3="function", lookupProperty = container.lookupProperty || function(parent, propertyName) {
        if (Object.prototype.hasOwnProperty.call(parent, propertyName)) {
          return parent[propertyName];
        }
        return undefined
    };

  return "Hello "
    + ((stack1 = (((helper = lookupProperty(helpers,"name") || alias1(depth0, "name", {"start":{"line":1,"column":8},"end":{"line":1,"column":12}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"name","hash":{},"data":data,"loc":{"start":{"line":1,"column":6},"end":{"line":1,"column":14}}}) : helper))) != null ? stack1 : "")
    + ",\n\nWe noticed this on your account: "
    + ((stack1 = (((helper = lookupProperty(helpers,"event") || alias1(depth0, "event", {"start":{"line":3,"column":35},"end":{"line":3,"column":40}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"event","hash":{},"data":data,"loc":{"start":{"line":3,"column":33},"end":{"line":3,"column":42}}}) : helper))) != null ? stack1 : "")
    + " at "
    + ((stack1 = (((helper = lookupProperty(helpers,"occurredAtUtc") || alias1(depth0, "occurredAtUtc", {"start":{"line":3,"column":48},"end":{"line":3,"column":61}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"occurredAtUtc","hash":{},"data":data,"loc":{"start":{"line":3,"column":46},"end":{"line":3,"column":63}}}) : helper))) != null ? stack1 : "")
    + ".\n\n"
    + ((stack1 = (((helper = lookupProperty(helpers,"details") || alias1(depth0, "details", {"start":{"line":5,"column":2},"end":{"line":5,"column":9}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"details","hash":{},"data":data,"loc":{"start":{"line":5,"column":0},"end":{"line":5,"column":11}}}) : helper))) != null ? stack1 : "")
    + "\n";
},"useData":true},
  "sms-verification.txt": {"compiler":[8,">= 4.3.0"],"main":function(container,depth0,helpers,partials,data) {
    var stack1, helper, alias1=container.strict, alias2=depth0 != null ? depth0 : (container.nullContext || {}), alias3="function", lookupProperty = container.lookupProperty || function(parent, propertyName) {
        if (Object.prototype.hasOwnProperty.call(parent, propertyName)) {
          return parent[propertyName];
        }
        return undefined
    };

  return "Your Bulwark verification code is "
    + ((stack1 = (((helper = lookupProperty(helpers,"code") || alias1(depth0, "code", {"start":{"line":1,"column":36},"end":{"line":1,"column":40}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"code","hash":{},"data":data,"loc":{"start":{"line":1,"column":34},"end":{"line":1,"column":42}}}) : helper))) != null ? stack1 : "")
    + ". It expires in "
    + ((stack1 = (((helper = lookupProperty(helpers,"expiresIn") || alias1(depth0, "expiresIn", {"start":{"line":1,"column":60},"end":{"line":1,"column":69}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"expiresIn","hash":{},"data":data,"loc":{"start":{"line":1,"column":58},"end":{"line":1,"column":71}}}) : helper))) != null ? stack1 : "")
    + ". Never share it: Bulwark will not ask you for it.\n";
},"useData":true},
  "verification.html": {"0":function(container,depth0,helpers,partials,data) {
    return " If it has expired, opening it lets you ask for a new one.";
},"1":function(container,depth0,helpers,partials,data) {
    var helper, lookupProperty = container.lookupProperty || function(parent, propertyName) {
        if (Object.prototype.hasOwnProperty.call(parent, propertyName)) {
          return parent[propertyName];
        }
        return undefined
    };

  return "    <p>Confirm by "
    + container.escapeExpression((((helper = lookupProperty(helpers,"registrationLapsesAtUtc") || container.strict(depth0, "registrationLapsesAtUtc", {"start":{"line":14,"column":20},"end":{"line":14,"column":43}} ))),(typeof helper === "function" ? helper.call(depth0 != null ? depth0 : (container.nullContext || {}),{"name":"registrationLapsesAtUtc","hash":{},"data":data,"loc":{"start":{"line":14,"column":18},"end":{"line":14,"column":45}}}) : helper)))
    + " or this registration is removed.</p>\n";
},"2":function(container,depth0,helpers,partials,data) {
    return "    <p>If you do not confirm your address, this registration may be removed.</p>\n";
},"compiler":[8,">= 4.3.0"],"main":function(container,depth0,helpers,partials,data) {
    var stack1, helper, alias1=container.strict, alias2=depth0 != null ? depth0 : (container.nullContext || {}), alias3="function", alias4=container.escapeExpression, lookupProperty = container.lookupProperty || function(parent, propertyName) {
        if (Object.prototype.hasOwnProperty.call(parent, propertyName)) {
          return parent[propertyName];
        }
        return undefined
    };

  return "<!doctype html>\n<html lang=\"en\">\n  <head>\n    <meta charset=\"utf-8\">\n    <title>"
    + alias4((((helper = lookupProperty(helpers,"subject") || alias1(depth0, "subject", {"start":{"line":5,"column":13},"end":{"line":5,"column":20}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"subject","hash":{},"data":data,"loc":{"start":{"line":5,"column":11},"end":{"line":5,"column":22}}}) : helper)))
    + "</title>\n  </head>\n  <body>\n    <p>Hello "
    + alias4((((helper = lookupProperty(helpers,"name") || alias1(depth0, "name", {"start":{"line":8,"column":15},"end":{"line":8,"column":19}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"name","hash":{},"data":data,"loc":{"start":{"line":8,"column":13},"end":{"line":8,"column":21}}}) : helper)))
    + ",</p>\n    <p>Please confirm your email address: open this link and press \"Confirm my email address\" on the page it shows.</p>\n    <p><a href=\""
    + alias4((((helper = lookupProperty(helpers,"verificationUrl") || alias1(depth0, "verificationUrl", {"start":{"line":10,"column":18},"end":{"line":10,"column":33}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"verificationUrl","hash":{},"data":data,"loc":{"start":{"line":10,"column":16},"end":{"line":10,"column":35}}}) : helper)))
    + "\">Confirm your email address</a></p>\n    <p>If the link does not open, copy this address into your browser:<br>"
    + alias4((((helper = lookupProperty(helpers,"verificationUrl") || alias1(depth0, "verificationUrl", {"start":{"line":11,"column":76},"end":{"line":11,"column":91}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"verificationUrl","hash":{},"data":data,"loc":{"start":{"line":11,"column":74},"end":{"line":11,"column":93}}}) : helper)))
    + "</p>\n    <p>The link works until "
    + alias4((((helper = lookupProperty(helpers,"expiresAtUtc") || alias1(depth0, "expiresAtUtc", {"start":{"line":12,"column":30},"end":{"line":12,"column":42}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"expiresAtUtc","hash":{},"data":data,"loc":{"start":{"line":12,"column":28},"end":{"line":12,"column":44}}}) : helper)))
    + "."
    + ((stack1 = lookupProperty(helpers,"if").call(alias2,lookupProperty(depth0,"canAskForNewLink"),{"name":"if","hash":{},"fn":container.program(0, data, 0),"inverse":container.noop,"data":data,"loc":{"start":{"line":12,"column":45},"end":{"line":12,"column":134}}})) != null ? stack1 : "")
    + "</p>\n"
    + ((stack1 = lookupProperty(helpers,"if").call(alias2,lookupProperty(depth0,"registrationLapsesAtUtc"),{"name":"if","hash":{},"fn":container.program(1, data, 0),"inverse":container.program(2, data, 0),"data":data,"loc":{"start":{"line":13,"column":0},"end":{"line":17,"column":7}}})) != null ? stack1 : "")
    + "  </body>\n</html>\n";
},"useData":true},
  "verification.subject": {"compiler":[8,">= 4.3.0"],"main":function(container,depth0,helpers,partials,data) {
    return "Verify your email address\n";
},"useData":true},
  "verification.txt": {"0":function(container,depth0,helpers,partials,data) {
    return " If it has expired, opening it lets you ask for a new one.";
},"1":function(container,depth0,helpers,partials,data) {
    var stack1, helper, lookupProperty = container.lookupProperty || function(parent, propertyName) {
        if (Object.prototype.hasOwnProperty.call(parent, propertyName)) {
          return parent[propertyName];
        }
        return undefined
    };

  return "Confirm by "
    + ((stack1 = (((helper = lookupProperty(helpers,"registrationLapsesAtUtc") || container.strict(depth0, "registrationLapsesAtUtc", {"start":{"line":9,"column":13},"end":{"line":9,"column":36}} ))),(typeof helper === "function" ? helper.call(depth0 != null ? depth0 : (container.nullContext || {}),{"name":"registrationLapsesAtUtc","hash":{},"data":data,"loc":{"start":{"line":9,"column":11},"end":{"line":9,"column":38}}}) : helper))) != null ? stack1 : "")
    + " or this registration is removed.\n";
},"2":function(container,depth0,helpers,partials,data) {
    return "If you do not confirm your address, this registration may be removed.\n";
},"compiler":[8,">= 4.3.0"],"main":function(container,depth0,helpers,partials,data) {
    var stack1, helper, alias1=container.strict, alias2=depth0 != null ? depth0 : (container.nullContext || {}), alias3="function", lookupProperty = container.lookupProperty || function(parent, propertyName) {
        if (Object.prototype.hasOwnProperty.call(parent, propertyName)) {
          return parent[propertyName];
        }
        return undefined
    };

  return "Hello "
    + ((stack1 = (((helper = lookupProperty(helpers,"name") || alias1(depth0, "name", {"start":{"line":1,"column":8},"end":{"line":1,"column":12}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"name","hash":{},"data":data,"loc":{"start":{"line":1,"column":6},"end":{"line":1,"column":14}}}) : helper))) != null ? stack1 : "")
    + ",\n\nPlease confirm your email address: open this link and press \"Confirm my email address\" on the page it shows.\n\n"
    + ((stack1 = (((helper = lookupProperty(helpers,"verificationUrl") || alias1(depth0, "verificationUrl", {"start":{"line":5,"column":2},"end":{"line":5,"column":17}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"verificationUrl","hash":{},"data":data,"loc":{"start":{"line":5,"column":0},"end":{"line":5,"column":19}}}) : helper))) != null ? stack1 : "")
    + "\n\nThe link works until "
    + ((stack1 = (((helper = lookupProperty(helpers,"expiresAtUtc") || alias1(depth0, "expiresAtUtc", {"start":{"line":7,"column":23},"end":{"line":7,"column":35}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"expiresAtUtc","hash":{},"data":data,"loc":{"start":{"line":7,"column":21},"end":{"line":7,"column":37}}}) : helper))) != null ? stack1 : "")
    + "."
    + ((stack1 = lookupProperty(helpers,"if").call(alias2,lookupProperty(depth0,"canAskForNewLink"),{"name":"if","hash":{},"fn":container.program(0, data, 0),"inverse":container.noop,"data":data,"loc":{"start":{"line":7,"column":38},"end":{"line":7,"column":127}}})) != null ? stack1 : "")
    + "\n"
    + ((stack1 = lookupProperty(helpers,"if").call(alias2,lookupProperty(depth0,"registrationLapsesAtUtc"),{"name":"if","hash":{},"fn":container.program(1, data, 0),"inverse":container.program(2, data, 0),"data":data,"loc":{"start":{"line":8,"column":0},"end":{"line":12,"column":7}}})) != null ? stack1 : "");
},"useData":true},
  "welcome.html": {"compiler":[8,">= 4.3.0"],"main":function(container,depth0,helpers,partials,data) {
    var helper, alias1=container.strict, alias2=depth0 != null ? depth0 : (container.nullContext || {}), alias3="function", alias4=container.escapeExpression, lookupProperty = container.lookupProperty || function(parent, propertyName) {
        if (Object.prototype.hasOwnProperty.call(parent, propertyName)) {
          return parent[propertyName];
        }
        return undefined
    };

  return "<!doctype html>\n<html lang=\"en\">\n  <head>\n    <meta charset=\"utf-8\">\n    <title>"
    + alias4((((helper = lookupProperty(helpers,"subject") || alias1(depth0, "subject", {"start":{"line":5,"column":13},"end":{"line":5,"column":20}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"subject","hash":{},"data":data,"loc":{"start":{"line":5,"column":11},"end":{"line":5,"column":22}}}) : helper)))
    + "</title>\n  </head>\n  <body>\n    <h1>Welcome, "
    + alias4((((helper = lookupProperty(helpers,"name") || alias1(depth0, "name", {"start":{"line":8,"column":19},"end":{"line":8,"column":23}} ))),(typeof helper === alias3 ? helper.call(alias2,{"name":"name","hash":{},"data":data,"loc":{"start":{"line":8,"column":17},"end":{"line":8,"column":25}}}) : helper)))
    + "!</h1>\n    <p>Confirming your email address comes first: open the link in the verification email we sent you separately, by the time it gives, or this registration is removed. If you have confirmed it already, you are all set.</p>\n    <p>Book a room whenever you need one.</p>\n    <p>If you did not create this account, you can ignore this email.</p>\n  </body>\n</html>\n";
},"useData":true},
  "welcome.subject": {"compiler":[8,">= 4.3.0"],"main":function(container,depth0,helpers,partials,data) {
    return "Welcome to Bulwark\n";
},"useData":true},
  "welcome.txt": {"compiler":[8,">= 4.3.0"],"main":function(container,depth0,helpers,partials,data) {
    var stack1, helper, lookupProperty = container.lookupProperty || function(parent, propertyName) {
        if (Object.prototype.hasOwnProperty.call(parent, propertyName)) {
          return parent[propertyName];
        }
        return undefined
    };

  return "Welcome, "
    + ((stack1 = (((helper = lookupProperty(helpers,"name") || container.strict(depth0, "name", {"start":{"line":1,"column":11},"end":{"line":1,"column":15}} ))),(typeof helper === "function" ? helper.call(depth0 != null ? depth0 : (container.nullContext || {}),{"name":"name","hash":{},"data":data,"loc":{"start":{"line":1,"column":9},"end":{"line":1,"column":17}}}) : helper))) != null ? stack1 : "")
    + "!\n\nConfirming your email address comes first: open the link in the verification email we sent you separately, by the time it gives, or this registration is removed. If you have confirmed it already, you are all set.\n\nBook a room whenever you need one.\n\nIf you did not create this account, you can ignore this email.\n";
},"useData":true},
};
