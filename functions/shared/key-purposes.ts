// Purposes bound into the KMS encryption context of sealed values, so IAM grants can require one.
// Free of imports: the stack (lib/) reads these to write its grant conditions.

/** The encryption-context member that names what a data key seals. */
export const purposeContextMember = 'purpose';

/**
 * The purpose of webhook signing secrets. Changing it would leave every secret sealed under it
 * unreadable to the webhooks function, whose grant requires the value in force.
 */
export const webhookSecretPurpose = 'webhook-signing-secret';

/** The members bound to a signing secret's data key (the KMS encryption context): its purpose and tenant. */
export const webhookSecretKeyContextFields = [purposeContextMember, 'tenantId'] as const;
